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
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.auth.tokens import Principal
from coinpurse.bonuses import service as bonuses
from coinpurse.bonuses.settings import BonusSettings
from coinpurse.core import audit
from coinpurse.core.clock import day_start, month_start, utcnow
from coinpurse.core.errors import NotFound
from coinpurse.core.ids import new_id
from coinpurse.events.service import emit, event_write
from coinpurse.kyc import service as kyc_service
from coinpurse.kyc.errors import LimitExceeded
from coinpurse.kyc.settings import KycSettings
from coinpurse.ledger import store as ledger_store
from coinpurse.ledger.idempotency import StoredResponse, claim
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
from coinpurse.ledger.service import JobResult, Ledger, Prepare, Renderer, RowInserts, SqlWrite
from coinpurse.ledger.views import rejection_problem
from coinpurse.payments import service as payments_service
from coinpurse.payments.errors import DebtOutstanding
from coinpurse.withdrawals import repository as repo
from coinpurse.withdrawals.errors import CurrencyNotWithdrawable, WithdrawalNotPending
from coinpurse.withdrawals.model import (
    CurrencyLimits,
    PeriodUse,
    Withdrawal,
    WithdrawalLimits,
)
from coinpurse.withdrawals.payouts import PAYOUT_PROVIDERS, Payout, PayoutError
from coinpurse.withdrawals.schemas import WithdrawalCreatedOut
from coinpurse.withdrawals.settings import WithdrawalSettings

HOLD_SERVICE = "withdrawals"


@dataclass(frozen=True, slots=True)
class Withdrawals:
    db: AsyncEngine
    ledger: Ledger
    settings: WithdrawalSettings
    kyc: KycSettings  # the tiers whose withdrawal limits requests are checked against
    bonus: BonusSettings  # what a request does while bonuses are being wagered


async def get(db: AsyncEngine, wid: str) -> Withdrawal:
    async with db.connect() as conn:
        found = await repo.get(conn, wid)
    if found is None:
        raise NotFound(f"no withdrawal {wid!r}")
    return found


async def own(db: AsyncEngine, user_id: str, wid: str) -> Withdrawal:
    """One of the user's withdrawals; someone else's is as unknown as a missing one."""
    found = await get(db, wid)
    if found.user_id != user_id:
        raise NotFound(f"no withdrawal {wid!r}")
    return found


async def list_withdrawals(db: AsyncEngine, *, user_id: str | None = None,
                           status: str | None = None, before: str | None = None,
                           limit: int = 50) -> tuple[list[Withdrawal], str | None]:
    return await repo.list_withdrawals(db, user_id=user_id, status=status, before=before,
                                       limit=limit)


async def limits(w: Withdrawals, user_id: str) -> WithdrawalLimits:
    """Per withdrawable currency: the bounds of one withdrawal, the KYC tier's daily and
    monthly totals and how much of them is used, so a page can explain a refusal before the
    user meets it. Read-only; a request checks all of it again, under the account's lock."""
    now = utcnow()
    found = []
    async with w.db.connect() as conn:
        level = await kyc_service.tier_level(conn, user_id)
        tier = w.kyc.tier_for(level)
        debt = await payments_service.total_debt(conn, user_id)
        for currency, bounds in w.settings.withdrawable.items():
            limit = tier.limits_for(currency)
            periods = [PeriodUse(limit.get(name), await repo.used_since(
                conn, user_id, currency, since, ())) for name, since in (
                ("withdraw_daily", day_start(now)), ("withdraw_monthly", month_start(now)))]
            found.append(CurrencyLimits(currency, bounds.min_amount, bounds.max_amount,
                                        *periods))
    return WithdrawalLimits(tier=level, allowed=tier.withdrawals,
                            required_tier=kyc_service.withdrawal_tier(w.kyc), debt=debt,
                            currencies=found)


# ---------------------------------------------------------------- request


def _check_amount(settings: WithdrawalSettings, currency: str, amount: int) -> None:
    """The currency may be withdrawn, and the amount is within its bounds."""
    settings.currency(currency)
    bounds = settings.withdrawable.get(currency)
    if bounds is None:
        raise CurrencyNotWithdrawable(
            f"{currency} cannot be withdrawn; withdrawable: "
            + (", ".join(settings.withdrawable) or "none"))
    low, high = bounds.min_amount, bounds.max_amount
    if amount < low or (high is not None and amount > high):
        name, limit = ("min_amount", low) if amount < low else ("max_amount", high)
        raise LimitExceeded(f"a withdrawal of {currency} must be from {low} to "
                            f"{high if high is not None else 'any amount'}",
                            limit=name, currency=currency, limit_value=limit,
                            requested=amount)


async def request(w: Withdrawals, user_id: str, idem: str, *, currency: str, amount: int,
                  destination: dict[str, Any]) -> JobResult:
    """Hold the amount for an operator's decision; the answer (201, or the problem that
    refused it) is stored with the idempotency key in the same commit."""
    _check_amount(w.settings, currency, amount)
    now = utcnow()
    new = Withdrawal(
        id=new_id(), user_id=user_id, currency=currency, amount=amount, hold_id=new_id(),
        destination=destination, status="pending", reason=None, decided_by=None,
        transaction_id=None, payout_provider=None, payout_reference=None,
        payout_error=None, created_at=now, updated_at=now)
    op = PlaceHold(hold_id=new.hold_id, address=f"user:{user_id}", currency=currency,
                   amount=amount, destination=w.settings.payouts_address,
                   description="Withdrawal", reference_id=new.id, service=HOLD_SERVICE,
                   expires_at=now + timedelta(seconds=w.settings.withdrawal_hold_ttl_s),
                   kind="withdrawal", metadata={"withdrawal_id": new.id})

    bonus = bonuses.WithdrawalBonuses(w.bonus, user_id, currency, new.id)

    def side_writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        if not isinstance(outcomes[0], HoldOutcome):
            return []
        return [repo.new_row(new), event_write("withdrawal.requested", new.event_data()),
                *bonus.writes(outcomes)]

    payload = {"currency": currency, "amount": amount, "destination": destination}
    return await w.ledger.submit(
        [op], render=_render_created(new),
        claim=claim(f"user:{user_id}", idem, "withdrawal", payload),
        side_writes=side_writes, prepare=_check_limits(w, new, op, bonus),
        lock_keys=bonus.lock_keys, atomic=True)


def _check_limits(w: Withdrawals, new: Withdrawal, op: PlaceHold,
                  bonus: bonuses.WithdrawalBonuses) -> Prepare:
    """Under the user's account lock: the tier allows withdrawals, no debt is owed, the
    tier's daily and monthly totals hold (counting this batch's earlier requests), and the
    currency's bonus policy: active bonuses are forfeited with the hold, or block it."""
    user_id, currency, amount = new.user_id, new.currency, new.amount

    async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> list[Operation] | Rejection:
        level = await kyc_service.tier_level(conn, user_id)
        refusal = kyc_service.withdrawal_refusal(w.kyc, level)
        if refusal is not None:
            return Rejection.of(refusal)
        if await payments_service.total_debt(conn, user_id, pending) > 0:
            return Rejection.of(DebtOutstanding(
                "a refunded top-up left a debt; the next top-ups repay it first"))
        limits = w.kyc.tier_for(level).limits_for(currency)
        for name, since in (("withdraw_daily", day_start(new.created_at)),
                            ("withdraw_monthly", month_start(new.created_at))):
            limit = limits.get(name)
            if limit is None:
                continue
            used = await repo.used_since(conn, user_id, currency, since, pending)
            if used + amount > limit:
                return Rejection.of(kyc_service.limit_refusal(
                    w.kyc, level, currency, name, limit=limit, used=used, requested=amount))
        forfeits = await bonus.decide(conn, states, pending)
        if isinstance(forfeits, Rejection):
            return forfeits
        return [op, *forfeits]  # the hold first: the answer is about it

    return prepare


def _render_created(new: Withdrawal) -> Renderer:
    def render(outcomes: list[Outcome]) -> StoredResponse:
        outcome = outcomes[0]  # the hold; then the forfeit of active bonuses, if any
        if isinstance(outcome, Rejection):
            return rejection_problem(outcome)
        assert isinstance(outcome, HoldOutcome)
        body = WithdrawalCreatedOut.of(new, outcome.balance).model_dump(mode="json")
        return StoredResponse(201, orjson.dumps(body))

    return render


# ---------------------------------------------------------------- decisions


def _no_answer(_outcomes: list[Outcome]) -> StoredResponse:
    return StoredResponse(200, b"{}")


def _not_pending(found: Withdrawal) -> WithdrawalNotPending:
    return WithdrawalNotPending(f"the withdrawal is {found.status}",
                                withdrawal_status=found.status)


def _audit(admin: Principal, action: str, found: Withdrawal, ip: str | None,
           **details: Any) -> RowInserts:
    return repo.audit_row(audit.entry(
        actor=admin.user_id, actor_role=admin.role, action=action,
        target=f"withdrawal:{found.id}", ip=ip, details={
            **details, "amount": found.amount, "currency": found.currency,
            "user_id": found.user_id}))


async def _lost(db: AsyncEngine, found: Withdrawal) -> Withdrawal:
    """The hold was not open: find out why, record an expiry, return the fresh state."""
    async with db.begin() as conn:
        hold = (await ledger_store.lock_holds(conn, [found.hold_id])).get(found.hold_id)
        reason = "the hold expired before a decision"
        if hold is not None and hold.status == "expired" and await repo.set_if(
                conn, found.id, "pending", status="expired", reason=reason):
            await emit(conn, "withdrawal.expired",
                       found.event_data(status="expired", reason=reason))
    return await get(db, found.id)


LAPSED_BATCH = 100


async def expire_lapsed(db: AsyncEngine) -> int:
    """Record as expired (with ``withdrawal.expired``) the pending withdrawals whose hold
    expired, so the user and the services hear of it when it happens, not when someone
    next looks. Safe in several processes: each change is conditional on ``pending``."""
    async with db.connect() as conn:
        found = await repo.lapsed(conn, LAPSED_BATCH)
    for each in found:
        await _lost(db, each)
    return len(found)


async def cancel(w: Withdrawals, user_id: str, wid: str) -> Withdrawal:
    """By the user, while pending: the hold is released. Cancelling twice is harmless."""
    return await _release(w, await own(w.db, user_id, wid), "cancelled", None, None, None)


async def reject(w: Withdrawals, admin: Principal, wid: str, reason: str,
                 ip: str | None) -> Withdrawal:
    return await _release(w, await get(w.db, wid), "rejected", reason, admin, ip)


async def _release(w: Withdrawals, found: Withdrawal, status: str, reason: str | None,
                   admin: Principal | None, ip: str | None) -> Withdrawal:
    if found.status == "pending":
        def side_writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
            if not isinstance(outcomes[0], HoldOutcome):
                return []
            writes: list[RowInserts | SqlWrite] = [repo.change(
                found.id, "pending", status=status, reason=reason,
                decided_by=admin.user_id if admin else None),
                event_write(f"withdrawal.{status}", found.event_data(status=status,
                                                                     reason=reason))]
            if admin is not None:
                writes.append(_audit(admin, "withdrawal.reject", found, ip, reason=reason))
            return writes

        result = await w.ledger.submit(
            [ReleaseHold(hold_id=found.hold_id, service=HOLD_SERVICE, status="voided")],
            render=_no_answer, side_writes=side_writes)
        assert result.outcomes is not None
        if isinstance(result.outcomes[0], HoldOutcome):
            return await get(w.db, found.id)
        found = await _lost(w.db, found)
    if found.status == status and admin is None:
        return found
    raise _not_pending(found)


async def approve(w: Withdrawals, admin: Principal, wid: str, ip: str | None) -> Withdrawal:
    """Capture the hold to the payouts account, then pay out (outside any transaction).
    An approved withdrawal whose payout failed is approved again to retry the payout."""
    found = await get(w.db, wid)
    if found.status == "pending":
        found = await _capture(w, admin, found, ip)
    if found.status != "approved":
        raise _not_pending(found)
    return await _pay_out(w, found)


async def _capture(w: Withdrawals, admin: Principal, found: Withdrawal,
                   ip: str | None) -> Withdrawal:
    """The capture and its audit entry, in one commit; refused while the user owes a debt."""
    capture = CaptureHold(hold_id=found.hold_id, service=HOLD_SERVICE)

    async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> list[Operation] | Rejection:
        if await payments_service.total_debt(conn, found.user_id, pending) > 0:
            return Rejection.of(DebtOutstanding(
                "the user owes a debt from a refunded top-up; reject the withdrawal or "
                "wait until the debt is repaid"))
        return [capture]

    def side_writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        outcome = outcomes[0]
        if not isinstance(outcome, HoldOutcome) or outcome.transaction is None:
            return []
        tx_id = outcome.transaction.id
        return [repo.change(found.id, "pending", status="approved", transaction_id=tx_id,
                            decided_by=admin.user_id),
                _audit(admin, "withdrawal.approve", found, ip, transaction_id=tx_id)]

    result = await w.ledger.submit([capture], render=_no_answer, side_writes=side_writes,
                                   prepare=prepare)
    assert result.outcomes is not None
    outcome = result.outcomes[0]
    if isinstance(outcome, Rejection) and outcome.error is not None:
        raise outcome.error
    if not isinstance(outcome, HoldOutcome):
        raise _not_pending(await _lost(w.db, found))
    return await get(w.db, found.id)


async def _pay_out(w: Withdrawals, found: Withdrawal) -> Withdrawal:
    provider = PAYOUT_PROVIDERS["mock"]
    payout = Payout(found.id, found.user_id, found.currency, found.amount, found.destination)
    values: dict[str, Any]
    try:
        reference = await provider.send(payout)
        values = {"status": "paid", "payout_reference": reference, "payout_error": None}
    except PayoutError as exc:
        values = {"payout_error": str(exc)[:500]}
    async with w.db.begin() as conn:
        paid = await repo.set_if(conn, found.id, "approved", payout_provider=provider.name,
                                 **values)
        if paid and values.get("status") == "paid":
            await emit(conn, "withdrawal.paid", found.event_data(
                status="paid", payout_reference=values["payout_reference"]))
    return await get(w.db, found.id)
