"""Withdrawals: a hold on the amount while an operator reviews, then a capture to the
payouts account and a payout, or a release.

Every state change rides on the ledger operation it stands for (the hold placed, captured
or released) and commits with it, so an approval and a cancellation that race are decided
by the hold's row lock: exactly one wins, the other finds the hold no longer open. The KYC
tier, the debt check and the daily and monthly limits are checked by the job's ``prepare``
hook, in the same database transaction as the hold, under the user's account lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.auth.tokens import Principal
from coinpurse.config import Settings
from coinpurse.errors import (
    CoinpurseError,
    CurrencyNotWithdrawable,
    DebtOutstanding,
    KycRequired,
    LimitExceeded,
    NotFound,
    WithdrawalNotPending,
)
from coinpurse.idempotency import StoredResponse
from coinpurse.kit.pages import newest_first
from coinpurse.ledger.model import (
    AccountKey,
    AccountState,
    CaptureHold,
    HoldOutcome,
    Operation,
    Outcome,
    PlaceHold,
    Rejection,
    ReleaseHold,
)
from coinpurse.ledger.service import JobResult, Ledger, RowInserts, SqlWrite, new_transaction_id
from coinpurse.ledger.views import rejection_problem
from coinpurse.payments.packages import parse_withdrawable
from coinpurse.payments.service import (
    day_start,
    iso,
    limit_refusal,
    month_start,
    tier_for,
    tier_of,
    tiers,
    total_debt,
)
from coinpurse.tables import audit_log, holds, withdrawals
from coinpurse.withdrawals.payouts import PAYOUT_PROVIDERS, Payout, PayoutError

HOLD_SERVICE = "withdrawals"
COUNTED = ("pending", "approved", "paid")


@dataclass(frozen=True, slots=True)
class Withdrawals:
    db: AsyncEngine
    ledger: Ledger
    settings: Settings


@lru_cache(maxsize=16)
def _withdrawable(raw: str, currencies: tuple[str, ...]) -> dict[str, tuple[int, int | None]]:
    return parse_withdrawable(raw, list(currencies))


def withdrawable(settings: Settings) -> dict[str, tuple[int, int | None]]:
    return _withdrawable(settings.withdrawal_currencies, tuple(settings.currency_map))


def _now() -> datetime:
    return datetime.now(UTC)


def view(r: Row[Any] | Mapping[str, Any], *, admin: bool = False) -> dict[str, Any]:
    m = r._mapping if isinstance(r, Row) else r
    out: dict[str, Any] = {
        "id": m["id"], "status": m["status"], "currency": m["currency"],
        "amount": m["amount"], "destination": orjson.loads(m["destination_json"]),
        "reason": m["reason"], "transaction_id": m["transaction_id"],
        "payout_reference": m["payout_reference"], "payout_error": m["payout_error"],
        "created_at": iso(m["created_at"]), "updated_at": iso(m["updated_at"]),
    }
    if admin:
        out.update(user_id=m["user_id"], hold_id=m["hold_id"], decided_by=m["decided_by"],
                   payout_provider=m["payout_provider"])
    return out


async def get(db: AsyncEngine, wid: str) -> Row[Any]:
    async with db.connect() as conn:
        row = (await conn.execute(select(withdrawals).where(withdrawals.c.id == wid))).first()
    if row is None:
        raise NotFound(f"no withdrawal {wid!r}")
    return row


async def _used(conn: AsyncConnection, user_id: str, currency: str, since: datetime,
                pending: Sequence[RowInserts]) -> int:
    w = withdrawals.c
    used = int((await conn.execute(select(func.coalesce(func.sum(w.amount), 0)).where(
        w.user_id == user_id, w.currency == currency, w.created_at >= since,
        w.status.in_(COUNTED)))).scalar_one())
    for table, rows in pending:  # withdrawals placed by this batch's earlier jobs
        if table is withdrawals:
            used += sum(r["amount"] for r in rows
                        if r["user_id"] == user_id and r["currency"] == currency)
    return used


def _lowest_tier_allowing(settings: Settings) -> int | None:
    return next((lvl for lvl, t in sorted(tiers(settings).items()) if t.withdrawals), None)


async def request(w: Withdrawals, user_id: str, idem: str, *, currency: str, amount: int,
                  destination: dict[str, Any]) -> JobResult:
    bounds = withdrawable(w.settings).get(currency)
    if bounds is None:
        raise CurrencyNotWithdrawable(
            f"{currency} cannot be withdrawn; withdrawable: "
            + (", ".join(withdrawable(w.settings)) or "none"))
    low, high = bounds
    if amount < low or (high is not None and amount > high):
        name, limit = ("min_amount", low) if amount < low else ("max_amount", high)
        raise LimitExceeded(f"a withdrawal of {currency} must be from {low} to "
                            f"{high if high is not None else 'any amount'}",
                            limit=name, currency=currency, limit_value=limit,
                            requested=amount)
    now = _now()
    wid, hold_id = new_transaction_id(), new_transaction_id()
    user = f"user:{user_id}"
    op = PlaceHold(hold_id=hold_id, address=user, currency=currency, amount=amount,
                   destination=w.settings.payouts_address, description="Withdrawal",
                   reference_id=wid, service=HOLD_SERVICE,
                   expires_at=now + timedelta(seconds=w.settings.withdrawal_hold_ttl_s),
                   kind="withdrawal", metadata={"withdrawal_id": wid})
    refusal: list[CoinpurseError] = []

    def refuse(err: CoinpurseError) -> Rejection:
        refusal.append(err)
        return Rejection(err.code, err.detail)

    async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> list[Operation] | Rejection:
        refusal.clear()  # a batch retried after a dropped connection runs this again
        level = await tier_of(conn, user_id)
        tier = tier_for(w.settings, level)
        if not tier.withdrawals:
            needed = _lowest_tier_allowing(w.settings)
            return refuse(KycRequired(
                f"withdrawals need verification to tier {needed}" if needed is not None
                else "withdrawals are not allowed at any tier", tier=level,
                required_tier=needed, limit="withdrawals"))
        if await total_debt(conn, user_id, pending) > 0:
            return refuse(DebtOutstanding(
                "a refunded top-up left a debt; the next top-ups repay it first"))
        limits = tier.limits_for(currency)
        for name, since in (("withdraw_daily", day_start(now)),
                            ("withdraw_monthly", month_start(now))):
            limit = limits.get(name)
            if limit is None:
                continue
            used = await _used(conn, user_id, currency, since, pending)
            if used + amount > limit:
                return refuse(limit_refusal(w.settings, level, currency, name, limit=limit,
                                            used=used, requested=amount))
        return [op]

    def render(outcomes: list[Outcome]) -> StoredResponse:
        (outcome,) = outcomes
        if isinstance(outcome, Rejection):
            if refusal:
                return StoredResponse(refusal[0].status, refusal[0].problem_bytes())
            return rejection_problem(outcome)
        assert isinstance(outcome, HoldOutcome)
        body = view(_row(w, wid, user_id, currency, amount, hold_id, destination, now))
        body["wallet"] = outcome.balance.as_dict()
        return StoredResponse(201, orjson.dumps(body))

    def side_writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        if not isinstance(outcomes[0], HoldOutcome):
            return []
        return [(withdrawals, [_row(w, wid, user_id, currency, amount, hold_id, destination,
                                    now)])]

    payload = {"currency": currency, "amount": amount, "destination": destination}
    from coinpurse.idempotency import claim

    return await w.ledger.submit(
        [op], render=render, claim=claim(f"user:{user_id}", idem, "withdrawal", payload),
        side_writes=side_writes, prepare=prepare)


def _row(w: Withdrawals, wid: str, user_id: str, currency: str, amount: int, hold_id: str,
         destination: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {"id": wid, "user_id": user_id, "currency": currency, "amount": amount,
            "hold_id": hold_id, "destination_json": orjson.dumps(destination).decode(),
            "status": "pending", "reason": None, "decided_by": None, "transaction_id": None,
            "payout_provider": None, "payout_reference": None, "payout_error": None,
            "created_at": now, "updated_at": now}


def _set(wid: str, when: str, **values: Any) -> SqlWrite:
    async def run(conn: AsyncConnection) -> None:
        await conn.execute(update(withdrawals).where(
            withdrawals.c.id == wid, withdrawals.c.status == when).values(
            **values, updated_at=_now()))

    return run


def _audit(actor: Principal, action: str, wid: str, details: dict[str, Any],
           ip: str | None) -> RowInserts:
    return (audit_log, [{"at": _now(), "actor": actor.user_id, "actor_role": actor.role,
                         "action": action, "target": f"withdrawal:{wid}",
                         "details_json": orjson.dumps(details).decode(), "ip": ip}])


def _no_answer(_outcomes: list[Outcome]) -> StoredResponse:
    return StoredResponse(200, b"{}")


async def _lost(w: Withdrawals, row: Row[Any]) -> Row[Any]:
    """The hold was not open: find out why, record an expiry, return the fresh row."""
    async with w.db.begin() as conn:
        hold_status = (await conn.execute(select(holds.c.status).where(
            holds.c.id == row.hold_id))).scalar()
        if hold_status == "expired":
            await _set(row.id, "pending", status="expired",
                       reason="the hold expired before a decision")(conn)
    return await get(w.db, row.id)


async def cancel(w: Withdrawals, user_id: str, wid: str) -> Row[Any]:
    """By the user, while pending: the hold is released. Cancelling twice is harmless."""
    row = await get(w.db, wid)
    if row.user_id != user_id:
        raise NotFound(f"no withdrawal {wid!r}")
    return await _release(w, row, "cancelled", None, None, None)


async def reject(w: Withdrawals, admin: Principal, wid: str, reason: str,
                 ip: str | None) -> Row[Any]:
    return await _release(w, await get(w.db, wid), "rejected", reason, admin, ip)


async def _release(w: Withdrawals, row: Row[Any], status: str, reason: str | None,
                   admin: Principal | None, ip: str | None) -> Row[Any]:
    if row.status == "pending":
        def side_writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
            if not isinstance(outcomes[0], HoldOutcome):
                return []
            writes: list[RowInserts | SqlWrite] = [_set(
                row.id, "pending", status=status, reason=reason,
                decided_by=admin.user_id if admin else None)]
            if admin is not None:
                writes.append(_audit(admin, "withdrawal.reject", row.id,
                                     {"reason": reason, "amount": row.amount,
                                      "currency": row.currency, "user_id": row.user_id}, ip))
            return writes

        result = await w.ledger.submit(
            [ReleaseHold(hold_id=row.hold_id, service=HOLD_SERVICE, status="voided")],
            render=_no_answer, side_writes=side_writes)
        assert result.outcomes is not None
        if isinstance(result.outcomes[0], HoldOutcome):
            return await get(w.db, row.id)
        row = await _lost(w, row)
    if row.status == status and admin is None:
        return row
    raise WithdrawalNotPending(f"the withdrawal is {row.status}", status=row.status)


async def approve(w: Withdrawals, admin: Principal, wid: str, ip: str | None) -> Row[Any]:
    """Capture the hold to the payouts account, then pay out (outside any transaction).
    An approved withdrawal whose payout failed is approved again to retry the payout."""
    row = await get(w.db, wid)
    if row.status == "pending":
        refusal: list[CoinpurseError] = []

        async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                          pending: Sequence[RowInserts]) -> list[Operation] | Rejection:
            refusal.clear()  # a batch retried after a dropped connection runs this again
            if await total_debt(conn, row.user_id, pending) > 0:
                err = DebtOutstanding("the user owes a debt from a refunded top-up; reject "
                                      "the withdrawal or wait until the debt is repaid")
                refusal.append(err)
                return Rejection(err.code, err.detail)
            return [CaptureHold(hold_id=row.hold_id, service=HOLD_SERVICE)]

        def side_writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
            outcome = outcomes[0]
            if not isinstance(outcome, HoldOutcome) or outcome.transaction is None:
                return []
            return [_set(row.id, "pending", status="approved",
                         transaction_id=outcome.transaction.id, decided_by=admin.user_id),
                    _audit(admin, "withdrawal.approve", row.id,
                           {"amount": row.amount, "currency": row.currency,
                            "user_id": row.user_id,
                            "transaction_id": outcome.transaction.id}, ip)]

        result = await w.ledger.submit(
            [CaptureHold(hold_id=row.hold_id, service=HOLD_SERVICE)], render=_no_answer,
            side_writes=side_writes, prepare=prepare)
        assert result.outcomes is not None
        if refusal:
            raise refusal[0]
        if not isinstance(result.outcomes[0], HoldOutcome):
            row = await _lost(w, row)
            raise WithdrawalNotPending(f"the withdrawal is {row.status}", status=row.status)
        row = await get(w.db, wid)
    if row.status != "approved":
        raise WithdrawalNotPending(f"the withdrawal is {row.status}", status=row.status)
    return await _pay_out(w, row)


async def _pay_out(w: Withdrawals, row: Row[Any]) -> Row[Any]:
    provider = PAYOUT_PROVIDERS["mock"]
    payout = Payout(row.id, row.user_id, row.currency, row.amount,
                    orjson.loads(row.destination_json))
    values: dict[str, Any]
    try:
        reference = await provider.send(payout)
        values = {"status": "paid", "payout_reference": reference, "payout_error": None}
    except PayoutError as exc:
        values = {"payout_error": str(exc)[:500]}
    async with w.db.begin() as conn:
        await _set(row.id, "approved", payout_provider=provider.name, **values)(conn)
    return await get(w.db, row.id)


async def list_withdrawals(db: AsyncEngine, *, user_id: str | None = None,
                           status: str | None = None, before: str | None = None,
                           limit: int = 50) -> tuple[list[Row[Any]], str | None]:
    rows, next_id = await newest_first(db, withdrawals,
                                       equal={"user_id": user_id, "status": status},
                                       before=before, limit=limit)
    return rows, next_id
