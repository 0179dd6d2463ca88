"""Withdrawals: users request and cancel; operators approve (capture and pay out) or
reject."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from coinpurse.bonuses.errors import WageringIncomplete
from coinpurse.core import cursor
from coinpurse.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from coinpurse.http.deps import Admin, AdminWriter, IdempotencyKey, State, UserId, client_ip
from coinpurse.http.responses import json_response, problems, replay_response
from coinpurse.kyc.errors import KycRequired, LimitExceeded
from coinpurse.ledger import queries
from coinpurse.ledger.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientFunds,
    UnknownCurrency,
)
from coinpurse.payments.errors import DebtOutstanding
from coinpurse.withdrawals import schemas as s
from coinpurse.withdrawals import service as svc
from coinpurse.withdrawals.errors import CurrencyNotWithdrawable, WithdrawalNotPending

router = APIRouter(tags=["withdrawals"])
WithdrawalId = Annotated[str, Path(max_length=36, pattern=r"^[0-9a-f-]{1,36}$")]
PAGE_MAX = queries.PAGE_MAX


def _w(state: State) -> svc.Withdrawals:
    return svc.Withdrawals(state.db, state.ledger, state.settings, state.settings,
                           state.settings)


def _answer(body: BaseModel) -> Response:
    return json_response(body.model_dump(mode="json"))


@router.post("/api/v1/withdrawals", status_code=201, response_model=s.WithdrawalCreatedOut,
             responses=problems(ValidationFailed, Unauthorized, UnknownCurrency,
                                CurrencyNotWithdrawable, InsufficientFunds, KycRequired,
                                LimitExceeded, DebtOutstanding, WageringIncomplete,
                                IdempotencyKeyReused, IdempotencyKeyInUse),
             summary="Ask to cash out: the amount is held until an operator decides")
async def request_withdrawal(body: s.WithdrawalIn, user_id: UserId, state: State,
                             idem: IdempotencyKey) -> Response:
    """Checked in the same database transaction as the hold: the KYC tier allows
    withdrawals (`kyc_required`), no debt from a refunded top-up (`debt_outstanding`), the
    per-withdrawal minimum and maximum and the tier's daily and monthly totals
    (`limit_exceeded`, with `limit` naming which). While bonuses of the currency are being
    wagered, the currency's policy applies (`COINPURSE_BONUS_WITHDRAWAL_POLICY`): `forfeit`
    closes them in the same commit as the hold, `block` refuses with
    `wagering_incomplete` and what is left to wager."""
    return replay_response(await svc.request(
        _w(state), user_id, idem, currency=body.currency, amount=body.amount,
        destination=body.destination))


@router.get("/api/v1/withdrawals", response_model=s.WithdrawalPage,
            responses=problems(ValidationFailed, Unauthorized),
            summary="The caller's withdrawals, newest first")
async def my_withdrawals(user_id: UserId, state: State,
                         limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
                         cursor_: Annotated[str | None, Query(alias="cursor",
                                                              max_length=96)] = None,
                         ) -> Response:
    """The caller's withdrawals, newest first, with cursor pages."""
    found, next_id = await svc.list_withdrawals(state.db, user_id=user_id,
                                                before=cursor.decode_text(cursor_), limit=limit)
    return _answer(s.WithdrawalPage(
        data=[s.WithdrawalOut.from_domain(x) for x in found],
        next_cursor=cursor.encode_text(next_id) if next_id else None))


@router.get("/api/v1/withdrawals/limits", response_model=s.WithdrawalLimitsOut,
            responses=problems(Unauthorized),
            summary="What the caller may withdraw: bounds, KYC limits and what is used")
async def my_limits(user_id: UserId, state: State) -> Response:
    """Per withdrawable currency: the bounds of one withdrawal, and the KYC tier's daily and
    monthly totals with what is used of them; whether the tier may withdraw at all and which
    tier may; the debt a refunded top-up left. `POST /api/v1/withdrawals` checks all of it
    again."""
    return _answer(s.WithdrawalLimitsOut.model_validate(await svc.limits(_w(state), user_id)))


@router.get("/api/v1/withdrawals/{withdrawal_id}", response_model=s.WithdrawalOut,
            responses=problems(Unauthorized, NotFound), summary="One of the caller's")
async def my_withdrawal(withdrawal_id: WithdrawalId, user_id: UserId,
                        state: State) -> Response:
    """One of the caller's withdrawals (404 for anyone else's)."""
    return _answer(s.WithdrawalOut.from_domain(await svc.own(state.db, user_id,
                                                             withdrawal_id)))


@router.post("/api/v1/withdrawals/{withdrawal_id}/cancel", response_model=s.WithdrawalOut,
             responses=problems(Unauthorized, NotFound, WithdrawalNotPending),
             summary="Cancel a pending withdrawal: the hold is released")
async def cancel(withdrawal_id: WithdrawalId, user_id: UserId, state: State) -> Response:
    """Racing an approval, exactly one wins; the other answers 409
    `withdrawal_not_pending`. Cancelling a cancelled withdrawal answers it again."""
    return _answer(s.WithdrawalOut.from_domain(await svc.cancel(_w(state), user_id,
                                                                withdrawal_id)))


@router.get("/admin/v1/withdrawals", response_model=s.AdminWithdrawalPage, tags=["admin"],
            responses=problems(ValidationFailed, Unauthorized, Forbidden),
            summary="Withdrawals, newest first (status=pending: the review queue)")
async def admin_list(admin: Admin, state: State,
                     status: Annotated[str | None, Query(max_length=16)] = None,
                     user_id: Annotated[str | None, Query(max_length=128)] = None,
                     limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
                     cursor_: Annotated[str | None, Query(alias="cursor",
                                                          max_length=96)] = None,
                     ) -> Response:
    """Withdrawals of every user, newest first; `status=pending` is the review queue. Admin or
    auditor."""
    found, next_id = await svc.list_withdrawals(state.db, user_id=user_id, status=status,
                                                before=cursor.decode_text(cursor_), limit=limit)
    return _answer(s.AdminWithdrawalPage(
        data=[s.AdminWithdrawalOut.from_domain(x) for x in found],
        next_cursor=cursor.encode_text(next_id) if next_id else None))


@router.post("/admin/v1/withdrawals/{withdrawal_id}/approve",
             response_model=s.AdminWithdrawalOut, tags=["admin"],
             responses=problems(Unauthorized, Forbidden, NotFound, WithdrawalNotPending,
                                DebtOutstanding),
             summary="Capture the hold to the payouts account and pay out")
async def approve(withdrawal_id: WithdrawalId, admin: AdminWriter, state: State,
                  request: Request) -> Response:
    """The capture and its audit entry commit together; the payout provider is called
    afterwards. `paid` when it accepts; if it fails the withdrawal stays `approved` with
    `payout_error`, and approving again retries the payout only."""
    approved = await svc.approve(_w(state), admin, withdrawal_id, client_ip(request))
    return _answer(s.AdminWithdrawalOut.from_domain(approved))


@router.post("/admin/v1/withdrawals/{withdrawal_id}/reject",
             response_model=s.AdminWithdrawalOut, tags=["admin"],
             responses=problems(ValidationFailed, Unauthorized, Forbidden, NotFound,
                                WithdrawalNotPending),
             summary="Release the hold, with a reason")
async def reject(withdrawal_id: WithdrawalId, body: s.RejectIn, admin: AdminWriter,
                 state: State, request: Request) -> Response:
    """Releases the withdrawal's hold and records the reason, which the user sees. A decided
    withdrawal answers 409 `withdrawal_not_pending`. Admin only; audited."""
    rejected = await svc.reject(_w(state), admin, withdrawal_id, body.reason,
                                client_ip(request))
    return _answer(s.AdminWithdrawalOut.from_domain(rejected))
