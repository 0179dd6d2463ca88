"""The admin API (``/admin/v1``): audit, statistics, keys, adjustments, reversals.

Admins and auditors read everything; only admins write. With built-in accounts both must
have signed in with two-factor authentication.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field, StrictInt, StringConstraints
from starlette.responses import Response

from coinpurse.admin import queries, service
from coinpurse.admin import schemas as a
from coinpurse.admin.errors import AlreadyReversed
from coinpurse.auth import keys
from coinpurse.auth.scopes import parse_scopes
from coinpurse.core import audit, cursor
from coinpurse.core.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from coinpurse.core.types import (
    ADDRESS_RE,
    KIND_RE,
    USER_ID_RE,
    Amount,
    StrictModel,
    UtcDateTime,
    clean_text,
)
from coinpurse.http.deps import Admin, AdminWriter, IdempotencyKey, State, client_ip
from coinpurse.http.responses import json_response, problems, raw_json_response
from coinpurse.ledger import queries as ledger_queries
from coinpurse.ledger.errors import InsufficientFunds, UnknownCurrency
from coinpurse.wallets.schemas import AccountOut, TransactionOut

router = APIRouter(prefix="/admin/v1", tags=["admin"])
PAGE = Annotated[int, Query(ge=1, le=ledger_queries.PAGE_MAX)]
Cursor = Annotated[str | None, Query(alias="cursor", max_length=96)]
UserPath = Annotated[str, Path(pattern=USER_ID_RE)]
_READ = (Unauthorized, Forbidden, ValidationFailed)
Reason = Annotated[str, StringConstraints(min_length=3, max_length=500), clean_text]


class _In(StrictModel):
    pass


@router.get("/transactions", response_model=a.TransactionSearchOut, responses=problems(*_READ),
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
    cursor_: Annotated[str | None, Query(alias="cursor", max_length=96)] = None,
) -> Response:
    """`summary` has the count and total per kind and currency of everything that matches,
    not only this page. A transaction's amount in a currency is the sum of its postings in
    it; `amount_min`/`amount_max` and `currency` filter on that."""
    if currency:
        state.settings.currency(currency)
    f = queries.TxFilter(user_id, address, currency, kind, service_name, reference_id,
                         created_from, created_to, amount_min, amount_max)
    async with state.db.connect() as conn:
        data, next_id, summary = await queries.search_transactions(
            conn, f, before=cursor.decode_text(cursor_), limit=limit)
    return json_response({"data": data, "summary": summary,
                          "next_cursor": cursor.encode_text(next_id) if next_id else None})


@router.get("/users/{user_id}/ledger", response_model=a.UserLedgerOut, responses=problems(*_READ),
            summary="Every entry of a user, with services, internal notes and totals")
async def user_ledger(user_id: UserPath, admin: Admin, state: State,
                      currency: Annotated[str | None, Query(max_length=16)] = None,
                      limit: PAGE = 50, cursor_: Annotated[str | None, Query(
                          alias="cursor", max_length=96)] = None) -> Response:
    if currency:
        state.settings.currency(currency)
    async with state.db.connect() as conn:
        out = await queries.user_ledger(conn, user_id, currency=currency,
                                        before=cursor.decode(cursor_), limit=limit)
    next_id = out.pop("next_id")
    out["next_cursor"] = cursor.encode(next_id) if next_id is not None else None
    return json_response(out)


@router.get("/stats", response_model=a.StatsOut,
            responses=problems(*_READ), summary="Money in the system, per currency")
async def stats(admin: Admin, state: State) -> Response:
    """Per currency: what sits in users' wallets (and is held), what each service issued
    (paid out of its account) and collected, volume per kind over 24 hours and 7 days; and
    the number of users with a wallet."""
    async with state.db.connect() as conn:
        return json_response(await queries.stats(conn, list(state.settings.currencies)))


@router.get("/accounts/{address}", response_model=AccountOut, responses=problems(*_READ),
            summary="Balances of any account")
async def account(address: Annotated[str, Path(pattern=ADDRESS_RE, max_length=255)],
                  admin: Admin, state: State) -> Response:
    async with state.db.connect() as conn:
        found = await ledger_queries.account_balances(conn, address)
    return json_response({"address": address,
                          "balances": {c: b.as_dict() for c, b in found.items()}})


@router.get("/audit-log", response_model=a.AuditPage, responses=problems(*_READ),
            summary="Every admin and auth action, newest first (append-only)")
async def audit_log(admin: Admin, state: State,
                    actor: Annotated[str | None, Query(max_length=160)] = None,
                    action: Annotated[str | None, Query(max_length=64)] = None,
                    limit: PAGE = 50, cursor_: Cursor = None) -> Response:
    async with state.db.connect() as conn:
        data, next_id = await queries.audit_page(conn, actor=actor, action=action,
                                                 before=cursor.decode(cursor_), limit=limit)
    return json_response({"data": data,
                          "next_cursor": cursor.encode(next_id) if next_id else None})


@router.get("/gifts", response_model=a.GiftReportOut, responses=problems(*_READ),
            summary="Gifts, with totals per gift type, receiver and agency")
async def gifts(admin: Admin, state: State,
                from_user_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
                to_user_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
                agency_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
                gift_type: Annotated[str | None, Query(max_length=32)] = None,
                created_from: UtcDateTime | None = None, created_to: UtcDateTime | None = None,
                limit: PAGE = 50, cursor_: Cursor = None) -> Response:
    async with state.db.connect() as conn:
        out = await queries.gift_report(
            conn, from_user_id=from_user_id, to_user_id=to_user_id, agency_id=agency_id,
            gift_type=gift_type, created_from=created_from, created_to=created_to,
            before=cursor.decode_text(cursor_), limit=limit)
    next_id = out.pop("next_id")
    out["next_cursor"] = cursor.encode_text(next_id) if next_id else None
    return json_response(out)


# --- service keys -------------------------------------------------------------------------

class KeyIn(_In):
    service: Annotated[str, StringConstraints(pattern=keys.SERVICE_RE.pattern)]
    scopes: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        min_length=1, max_length=50, examples=[["wallet:read", "wallet:credit:points"]])


class RotateIn(_In):
    grace_s: Annotated[StrictInt, Field(ge=0, le=30 * 86_400)] | None = Field(
        default=None, description="How long the old key keeps working; default "
        "COINPURSE_KEY_ROTATION_GRACE_S.")


@router.get("/keys", response_model=a.KeyList,
            responses=problems(*_READ), summary="Service keys (never the secrets)")
async def list_keys(admin: Admin, state: State) -> Response:
    async with state.db.connect() as conn:
        return json_response({"data": [k.as_dict() for k in await keys.list_keys(conn)]})


@router.post("/keys", status_code=201, response_model=a.KeyCreatedOut, responses=problems(*_READ),
             summary="Create a service key; the key is in this answer only")
async def create_key(body: KeyIn, request: Request, admin: AdminWriter,
                     state: State) -> Response:
    try:
        keys.check_service_name(body.service)
        scopes = ",".join(parse_scopes(",".join(body.scopes)))
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    async with state.db.begin() as conn:
        key, secret = await keys.create_key(conn, body.service, scopes,
                                            created_by=f"admin:{admin.user_id}")
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="admin.key_create", target=key.id,
                           details={"service": key.service, "scopes": list(key.scopes)},
                           ip=client_ip(request))
    return json_response({**key.as_dict(), "key": secret}, status=201)


@router.post("/keys/{key_id}/rotate", status_code=201, response_model=a.KeyRotatedOut,
             responses=problems(*_READ, NotFound),
             summary="Replace a key; the old one works for a grace period")
async def rotate_key(key_id: Annotated[str, Path(max_length=32)], request: Request,
                     admin: AdminWriter, state: State, body: RotateIn | None = None) -> Response:
    grace = body.grace_s if body and body.grace_s is not None else \
        state.settings.key_rotation_grace_s
    async with state.db.begin() as conn:
        new, secret, old = await keys.rotate_key(conn, key_id, grace,
                                                 rotated_by=f"admin:{admin.user_id}")
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="admin.key_rotate", target=key_id,
                           details={"new_key_id": new.id, "grace_s": grace},
                           ip=client_ip(request))
    _keys_changed(state)
    return json_response({**new.as_dict(), "key": secret, "previous": old.as_dict()},
                         status=201)


@router.post("/keys/{key_id}/revoke", response_model=a.KeyOut, responses=problems(*_READ, NotFound),
             summary="Revoke a key at once")
async def revoke_key(key_id: Annotated[str, Path(max_length=32)], request: Request,
                     admin: AdminWriter, state: State) -> Response:
    async with state.db.begin() as conn:
        key = await keys.revoke_key(conn, key_id)
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="admin.key_revoke", target=key_id, ip=client_ip(request))
    _keys_changed(state)
    return json_response(key.as_dict())


def _keys_changed(state: State) -> None:
    """After the commit this process forgets at once (others hear of it from the change)."""
    state.key_cache.clear()


# --- adjustments and reversals ------------------------------------------------------------

class AdjustmentIn(_In):
    user_id: Annotated[str, StringConstraints(pattern=USER_ID_RE)]
    currency: Annotated[str, StringConstraints(max_length=16)]
    amount: Amount
    direction: Literal["credit", "debit"]
    reason: Reason


class DecisionIn(_In):
    note: Annotated[str, StringConstraints(max_length=500), clean_text] | None = None


class ReverseIn(_In):
    reason: Reason


@router.post("/adjustments", status_code=201, response_model=a.AdjustmentOut,
             responses=problems(*_READ, UnknownCurrency, InsufficientFunds),
             summary="Credit or debit a user, with a reason")
async def create_adjustment(body: AdjustmentIn, request: Request, admin: AdminWriter,
                            state: State, idem: IdempotencyKey) -> Response:
    """Money moves from or to `service:adjustments`, recorded with the admin and the reason.
    Above `COINPURSE_ADJUSTMENT_APPROVAL_ABOVE` it waits (`pending`) for a second, different
    admin to approve or reject it. A debit beyond the available balance ends `failed`."""
    state.settings.currency(body.currency)
    out = await service.create_adjustment(
        state, admin, user_id=body.user_id, currency=body.currency, amount=body.amount,
        direction=body.direction, reason=body.reason, ip=client_ip(request), idem=idem)
    return json_response(out, status=201 if out["status"] != "failed" else 422)


@router.get("/adjustments", response_model=a.AdjustmentList,
            responses=problems(*_READ), summary="Adjustments, newest first")
async def list_adjustments(admin: Admin, state: State,
                           status: Annotated[str | None, Query(max_length=16)] = None,
                           limit: PAGE = 50) -> Response:
    from sqlalchemy import select

    from coinpurse.admin.tables import adjustments

    stmt = select(adjustments).order_by(adjustments.c.created_at.desc()).limit(limit)
    if status:
        stmt = stmt.where(adjustments.c.status == status)
    async with state.db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return json_response({"data": [service.adjustment_view(r) for r in rows]})


@router.post("/adjustments/{adjustment_id}/approve", response_model=a.AdjustmentOut,
             responses=problems(*_READ, NotFound, Conflict, InsufficientFunds),
             summary="Approve a pending adjustment (a different admin than its author)")
async def approve(adjustment_id: Annotated[str, Path(max_length=36)], request: Request,
                  admin: AdminWriter, state: State, body: DecisionIn | None = None) -> Response:
    out = await service.decide(state, admin, adjustment_id, approve=True,
                               note=body.note if body else None, ip=client_ip(request))
    return json_response(out, status=200 if out["status"] != "failed" else 422)


@router.post("/adjustments/{adjustment_id}/reject", response_model=a.AdjustmentOut,
             responses=problems(*_READ, NotFound, Conflict),
             summary="Reject a pending adjustment")
async def reject(adjustment_id: Annotated[str, Path(max_length=36)], request: Request,
                 admin: AdminWriter, state: State, body: DecisionIn | None = None) -> Response:
    return json_response(await service.decide(
        state, admin, adjustment_id, approve=False, note=body.note if body else None,
        ip=client_ip(request)))


@router.post("/transactions/{transaction_id}/reverse", status_code=201,
             response_model=TransactionOut,
             responses=problems(*_READ, NotFound, AlreadyReversed, Conflict,
                                InsufficientFunds),
             summary="Undo a transaction with a new one, at most once")
async def reverse(transaction_id: Annotated[str, Path(max_length=64)], body: ReverseIn,
                  request: Request, admin: AdminWriter, state: State) -> Response:
    """Posts the opposite postings. Refused with `insufficient_funds` when the money has
    already left an account it would be taken back from (nothing changes; it may be tried
    again later), and with 409 `already_reversed` the second time."""
    status, body_bytes = await service.reverse(state, admin, transaction_id,
                                               reason=body.reason, ip=client_ip(request))
    return raw_json_response(body_bytes, status)
