"""The admin API (``/admin/v1``): audit, statistics, keys, adjustments, reversals.

Admins and auditors read everything; only admins write. With built-in accounts both must
have signed in with two-factor authentication.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from coinpurse.admin import schemas as s
from coinpurse.admin.errors import AlreadyReversed
from coinpurse.admin.model import Adjustment, GiftFilter, TxFilter
from coinpurse.admin.service import DAYS_MAX, EXPORT_MAX, AdminService
from coinpurse.core.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from coinpurse.core.pages import PAGE_MAX
from coinpurse.core.types import ADDRESS_RE, KIND_RE, USER_ID_RE, UtcDateTime
from coinpurse.http.deps import Admin, AdminWriter, IdempotencyKey, State, client_ip
from coinpurse.http.responses import json_response, problems, raw_json_response
from coinpurse.ledger.errors import InsufficientFunds, UnknownCurrency
from coinpurse.ledger.model import Balance
from coinpurse.wallets.schemas import TransactionOut

router = APIRouter(prefix="/admin/v1", tags=["admin"])
PAGE = Annotated[int, Query(ge=1, le=PAGE_MAX)]
Cursor = Annotated[str | None, Query(alias="cursor", max_length=96)]
UserPath = Annotated[str, Path(pattern=USER_ID_RE)]
KeyId = Annotated[str, Path(max_length=32)]
AdjustmentId = Annotated[str, Path(max_length=36)]
_READ = (Unauthorized, Forbidden, ValidationFailed)


def _admin(state: State) -> AdminService:
    return AdminService(db=state.db, ledger=state.ledger, settings=state.settings,
                 auth=state.settings, key_cache=state.key_cache)


def _answer(out: s.Out, status: int = 200) -> Response:
    return json_response(out.answer(), status=status)


def _adjustment(adjustment: Adjustment, ok: int) -> Response:
    """An adjustment's answer: ``ok``, or 422 when posting it failed (``status: failed``)."""
    out = s.AdjustmentOut.model_validate(adjustment)
    return _answer(out, status=ok if out.status != "failed" else 422)


@router.get("/transactions", response_model=s.TransactionSearchOut, responses=problems(*_READ),
            summary="Search transactions, with totals for the whole filter")
async def search_transactions(
    admin: Admin, state: State,
    user_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
    address: Annotated[str | None, Query(pattern=ADDRESS_RE, max_length=255)] = None,
    currency: Annotated[str | None, Query(max_length=16)] = None,
    kind: Annotated[str | None, Query(pattern=KIND_RE)] = None,
    service_name: Annotated[str | None, Query(alias="service", max_length=64)] = None,
    reference_id: Annotated[str | None, Query(max_length=64)] = None,
    created_from: UtcDateTime | None = None,
    created_to: UtcDateTime | None = None,
    amount_min: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    amount_max: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: PAGE = 50,
    cursor_: Cursor = None,
) -> Response:
    """`summary` has the count and total per kind and currency of everything that matches,
    not only this page. A transaction's amount in a currency is the sum of its postings in
    it; `amount_min`/`amount_max` and `currency` filter on that."""
    f = TxFilter(user_id, address, currency, kind, service_name, reference_id, created_from,
                 created_to, amount_min, amount_max)
    found = await _admin(state).search_transactions(f, cursor_=cursor_, limit=limit)
    return _answer(s.TransactionSearchOut.from_domain(found))


@router.get("/transactions/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "One row per transaction and currency."},
                       **problems(*_READ, UnknownCurrency)},
            summary="Export a transaction search as CSV")
async def export_transactions(
    admin: Admin, state: State,
    user_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
    address: Annotated[str | None, Query(pattern=ADDRESS_RE, max_length=255)] = None,
    currency: Annotated[str | None, Query(max_length=16)] = None,
    kind: Annotated[str | None, Query(pattern=KIND_RE)] = None,
    service_name: Annotated[str | None, Query(alias="service", max_length=64)] = None,
    reference_id: Annotated[str | None, Query(max_length=64)] = None,
    created_from: UtcDateTime | None = None,
    created_to: UtcDateTime | None = None,
    amount_min: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    amount_max: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=EXPORT_MAX,
                                description="Most transactions exported, newest first.")]
    = 10_000,
) -> StreamingResponse:
    """The filters of `GET /admin/v1/transactions`. Columns: transaction_id, created_at,
    kind, currency, amount, description, reference_id, service, initiator. Amounts are
    integers in minor units, as everywhere in the API. Text that a spreadsheet would take for
    a formula is prefixed with `'`."""
    f = TxFilter(user_id, address, currency, kind, service_name, reference_id, created_from,
                 created_to, amount_min, amount_max)
    chunks = _admin(state).export_csv(f, limit=limit)
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="transactions.csv"'})


@router.get("/users/{user_id}/ledger", response_model=s.UserLedgerOut,
            responses=problems(*_READ),
            summary="Every entry of a user, with services, internal notes and totals")
async def user_ledger(user_id: UserPath, admin: Admin, state: State,
                      currency: Annotated[str | None, Query(max_length=16)] = None,
                      limit: PAGE = 50, cursor_: Cursor = None) -> Response:
    """Every entry of the user's wallets (sub-wallets too), newest first, with the service and
    internal notes of each transaction, and totals in and out per kind and currency. Admin or
    auditor."""
    found = await _admin(state).user_ledger(user_id, currency=currency, cursor_=cursor_,
                                            limit=limit)
    return _answer(s.UserLedgerOut.from_domain(found))


@router.get("/stats", response_model=s.StatsOut,
            responses=problems(*_READ), summary="Money in the system, per currency")
async def stats(admin: Admin, state: State) -> Response:
    """Per currency: what sits in users' wallets (and is held), what each service issued
    (paid out of its account) and collected, volume per kind over 24 hours and 7 days; and
    the number of users with a wallet."""
    return _answer(s.StatsOut.model_validate(await _admin(state).stats()))


@router.get("/stats/daily", response_model=s.DailyOut,
            responses=problems(*_READ, UnknownCurrency),
            summary="Volume per day, currency and kind; fees per day")
async def daily_stats(admin: Admin, state: State,
                      days: Annotated[int, Query(ge=1, le=DAYS_MAX, description="How many "
                                                 "UTC days, ending today.")] = 30,
                      currency: Annotated[str | None, Query(max_length=16)] = None
                      ) -> Response:
    """What the console's dashboard draws. A transaction's amount in a currency is the sum
    of its postings in it (as in `GET /admin/v1/transactions`). Fees are what entered
    `COINPURSE_PLATFORM_FEE_ADDRESS`."""
    found = await _admin(state).daily_stats(days=days, currency=currency,
                                            fee_address=state.settings.platform_fee_address)
    return _answer(s.DailyOut.model_validate(found))


@router.get("/stats/pending", response_model=s.PendingOut, responses=problems(*_READ),
            summary="How many withdrawals, KYC submissions and adjustments wait for a decision")
async def pending(admin: Admin, state: State) -> Response:
    """The console's to-do counts: withdrawals waiting for approval, KYC submissions to
    review, and adjustments waiting for a second admin. Admin or auditor."""
    return _answer(s.PendingOut.model_validate(await _admin(state).pending()))


@router.get("/accounts/{address}", response_model=s.AdminAccountOut,
            responses=problems(*_READ), summary="Balances of any account")
async def account(address: Annotated[str, Path(pattern=ADDRESS_RE, max_length=255)],
                  admin: Admin, state: State) -> Response:
    """The balances of any address (`user:<id>`, `service:<name>`, `platform:fees`, ...) in
    every currency it has. Admin or auditor. For a user's wallet (`user:<id>`) each currency
    also has `bonus`: the user's bonus wallet (see Bonuses)."""
    svc = _admin(state)
    found = await svc.account_balances(address)
    bonus = await svc.bonus_balances(address)
    zero = Balance(0, 0)
    balances = {c: {**found.get(c, zero).as_dict(),
                    **({"bonus": bonus.get(c, 0)} if bonus is not None else {})}
                for c in sorted(set(found) | set(bonus or ()))}
    out = s.AdminAccountOut.model_validate({"address": address, "balances": balances})
    return json_response(out.model_dump(mode="json", exclude_none=True))


@router.get("/audit-log", response_model=s.AuditPage, responses=problems(*_READ),
            summary="Every admin and auth action, newest first (append-only)")
async def audit_log(admin: Admin, state: State,
                    actor: Annotated[str | None, Query(max_length=160)] = None,
                    action: Annotated[str | None, Query(max_length=64)] = None,
                    limit: PAGE = 50, cursor_: Cursor = None) -> Response:
    """Every admin and auth action (who, what, when, from which address), newest first,
    filtered by `actor` and `action`. Append-only. Admin or auditor."""
    found, next_id = await _admin(state).audit_log(actor=actor, action=action,
                                                   cursor_=cursor_, limit=limit)
    return _answer(s.AuditPage.from_domain(found, next_id))


@router.get("/gifts", response_model=s.GiftReportOut, responses=problems(*_READ),
            summary="Gifts, with totals per gift type, receiver and agency")
async def gifts(admin: Admin, state: State,
                from_user_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
                to_user_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
                agency_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
                gift_type: Annotated[str | None, Query(max_length=32)] = None,
                created_from: UtcDateTime | None = None, created_to: UtcDateTime | None = None,
                limit: PAGE = 50, cursor_: Cursor = None) -> Response:
    """Gifts filtered by giver, receiver, agency, type and time, with totals per gift type,
    receiver and agency. Admin or auditor."""
    f = GiftFilter(from_user_id, to_user_id, agency_id, gift_type, created_from, created_to)
    report = await _admin(state).gift_report(f, cursor_=cursor_, limit=limit)
    return _answer(s.GiftReportOut.from_domain(report))


# --- service keys -------------------------------------------------------------------------

@router.get("/keys", response_model=s.KeyList,
            responses=problems(*_READ), summary="Service keys (never the secrets)")
async def list_keys(admin: Admin, state: State) -> Response:
    """Every service key with its service, scopes, prefix and state (never the secret). Admin
    or auditor."""
    found = await _admin(state).keys()
    return _answer(s.KeyList(data=[s.KeyOut.from_domain(k) for k in found]))


@router.post("/keys", status_code=201, response_model=s.KeyCreatedOut,
             responses=problems(*_READ), summary="Create a service key; the key is in this "
             "answer only")
async def create_key(body: s.KeyIn, request: Request, admin: AdminWriter,
                     state: State) -> Response:
    """Creates a service key for `service` with `scopes`; the secret is in this answer only and
    is stored hashed. Admin only; audited."""
    new = await _admin(state).create_key(admin, body.service, body.scopes,
                                         ip=client_ip(request))
    return _answer(s.KeyCreatedOut.of(new), status=201)


@router.post("/keys/{key_id}/rotate", status_code=201, response_model=s.KeyRotatedOut,
             responses=problems(*_READ, NotFound),
             summary="Replace a key; the old one works for a grace period")
async def rotate_key(key_id: KeyId, request: Request, admin: AdminWriter, state: State,
                     body: s.RotateIn | None = None) -> Response:
    """Creates a new key with the same service and scopes; the old key keeps working for
    `grace_s` (default `COINPURSE_KEY_ROTATION_GRACE_S`), so callers can switch without
    downtime. Admin only; audited."""
    rotated = await _admin(state).rotate_key(admin, key_id, body.grace_s if body else None,
                                             ip=client_ip(request))
    return _answer(s.KeyRotatedOut.of_rotation(rotated), status=201)


@router.post("/keys/{key_id}/revoke", response_model=s.KeyOut,
             responses=problems(*_READ, NotFound), summary="Revoke a key at once")
async def revoke_key(key_id: KeyId, request: Request, admin: AdminWriter,
                     state: State) -> Response:
    """Revokes a key: it stops working at once in every process. Admin only; audited."""
    key = await _admin(state).revoke_key(admin, key_id, ip=client_ip(request))
    return _answer(s.KeyOut.from_domain(key))


# --- adjustments and reversals ------------------------------------------------------------

@router.post("/adjustments", status_code=201, response_model=s.AdjustmentOut,
             responses=problems(*_READ, UnknownCurrency, InsufficientFunds),
             summary="Credit or debit a user, with a reason")
async def create_adjustment(body: s.AdjustmentIn, request: Request, admin: AdminWriter,
                            state: State, idem: IdempotencyKey) -> Response:
    """Money moves from or to `service:adjustments`, recorded with the admin and the reason.
    Above `COINPURSE_ADJUSTMENT_APPROVAL_ABOVE` it waits (`pending`) for a second, different
    admin to approve or reject it. A debit beyond the available balance ends `failed`."""
    adjustment = await _admin(state).create_adjustment(
        admin, user_id=body.user_id, currency=body.currency, amount=body.amount,
        direction=body.direction, reason=body.reason, ip=client_ip(request), idem=idem)
    return _adjustment(adjustment, ok=201)


@router.get("/adjustments", response_model=s.AdjustmentList,
            responses=problems(*_READ), summary="Adjustments, newest first")
async def list_adjustments(admin: Admin, state: State,
                           status: Annotated[str | None, Query(max_length=16)] = None,
                           limit: PAGE = 50) -> Response:
    """Manual adjustments, newest first, filtered by `status` (`pending`, `approving`,
    `applied`, `failed`, `rejected`). Admin or auditor."""
    found = await _admin(state).adjustments(status=status, limit=limit)
    return _answer(s.AdjustmentList.model_validate({"data": found}))


@router.post("/adjustments/{adjustment_id}/approve", response_model=s.AdjustmentOut,
             responses=problems(*_READ, NotFound, Conflict, InsufficientFunds),
             summary="Approve a pending adjustment (a different admin than its author)")
async def approve(adjustment_id: AdjustmentId, request: Request, admin: AdminWriter,
                  state: State, body: s.AdjustmentDecisionIn | None = None) -> Response:
    """Applies a pending adjustment above `COINPURSE_ADJUSTMENT_APPROVAL_ABOVE`; the approver
    must be a different admin than its author. Admin only; audited."""
    adjustment = await _admin(state).decide(admin, adjustment_id, approve=True,
                                            note=body.note if body else None,
                                            ip=client_ip(request))
    return _adjustment(adjustment, ok=200)


@router.post("/adjustments/{adjustment_id}/reject", response_model=s.AdjustmentOut,
             responses=problems(*_READ, NotFound, Conflict),
             summary="Reject a pending adjustment")
async def reject(adjustment_id: AdjustmentId, request: Request, admin: AdminWriter,
                 state: State, body: s.AdjustmentDecisionIn | None = None) -> Response:
    """Rejects a pending adjustment: nothing moves. Admin only; audited."""
    adjustment = await _admin(state).decide(admin, adjustment_id, approve=False,
                                            note=body.note if body else None,
                                            ip=client_ip(request))
    return _answer(s.AdjustmentOut.model_validate(adjustment))


@router.post("/transactions/{transaction_id}/reverse", status_code=201,
             response_model=TransactionOut,
             responses=problems(*_READ, NotFound, AlreadyReversed, Conflict,
                                InsufficientFunds),
             summary="Undo a transaction with a new one, at most once")
async def reverse(transaction_id: Annotated[str, Path(max_length=64)], body: s.ReverseIn,
                  request: Request, admin: AdminWriter, state: State) -> Response:
    """Posts the opposite postings. Refused with `insufficient_funds` when the money has
    already left an account it would be taken back from (nothing changes; it may be tried
    again later), and with 409 `already_reversed` the second time."""
    answer = await _admin(state).reverse(admin, transaction_id, reason=body.reason,
                                         ip=client_ip(request))
    return raw_json_response(answer.body, answer.status)  # as the ledger stored it
