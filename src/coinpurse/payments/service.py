"""Top-ups: payment orders, their exactly-once credit, and refunds that take coins back.

Money moves only through the ledger. An order's state changes in the same commit as the
money movement it stands for, under a ledger idempotency claim named after the order
(``payments``/``credit:<order>``, ``payments``/``reverse:<order>``): the client's verify call,
a webhook and its redeliveries may all race to credit one order, and exactly one commit
credits it; the others replay that commit's answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Row, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.config import Settings
from coinpurse.core.clock import day_start, iso
from coinpurse.core.errors import NotFound, ValidationFailed
from coinpurse.core.ids import new_id
from coinpurse.core.pages import newest_first
from coinpurse.kyc import repository as kyc_repository
from coinpurse.kyc import service as kyc_service
from coinpurse.ledger.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from coinpurse.ledger.idempotency import Claim, StoredResponse, request_hash
from coinpurse.ledger.model import (
    AccountKey,
    AccountState,
    Operation,
    Outcome,
    Posting,
    Rejection,
    Transaction,
    TransactionSpec,
)
from coinpurse.ledger.service import Ledger, RowInserts, SideWrites, SqlWrite
from coinpurse.ledger.tables import accounts
from coinpurse.ledger.views import rejection_problem
from coinpurse.payments.errors import PaymentNotCompleted, ProviderNotEnabled, ProviderUnavailable
from coinpurse.payments.providers.base import OrderInfo, Provider, ProviderError
from coinpurse.payments.tables import payment_orders, user_debts

log = logging.getLogger("coinpurse.payments")

CLAIM_SCOPE = "payments"
OPEN = ("created", "pending")
CREDITED = ("succeeded", "refunded", "disputed")
IN_USE_WAIT_S = 10.0


class NotReady(Exception):
    """The event cannot be applied yet (its order is not paid or not found): retry later."""


@dataclass(frozen=True, slots=True)
class Payments:
    """What the payment logic needs; built from the app state or by the worker."""

    db: AsyncEngine
    ledger: Ledger
    settings: Settings

    def provider(self, name: str) -> Provider:
        registry = providers(self.settings)
        if name not in registry:
            raise ProviderNotEnabled(f"{name!r} is not enabled; enabled: "
                                     + ", ".join(registry))
        return registry[name]


_REGISTRIES: dict[int, tuple[Settings, dict[str, Provider]]] = {}


def providers(settings: Settings) -> dict[str, Provider]:
    """The enabled providers, built once per settings object (they hold SDK clients)."""
    cached = _REGISTRIES.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    from coinpurse.payments.providers.mock import MockProvider
    from coinpurse.payments.providers.razorpay import RazorpayProvider
    from coinpurse.payments.providers.stripe import StripeProvider

    registry: dict[str, Provider] = {}
    for name in settings.providers:
        if name == "mock":
            registry[name] = MockProvider(settings.mock_webhook_secret.get_secret_value(),
                                          settings.public_url)
        elif name == "stripe":
            assert settings.stripe_secret_key and settings.stripe_webhook_secrets
            secrets = [s.strip() for s in
                       settings.stripe_webhook_secrets.get_secret_value().split(",") if s.strip()]
            registry[name] = StripeProvider(
                settings.stripe_secret_key.get_secret_value(), secrets,
                tolerance_s=settings.stripe_webhook_tolerance_s,
                api_base=settings.stripe_api_base)
        elif name == "razorpay":
            assert settings.razorpay_key_id and settings.razorpay_key_secret
            assert settings.razorpay_webhook_secret
            registry[name] = RazorpayProvider(
                settings.razorpay_key_id, settings.razorpay_key_secret.get_secret_value(),
                settings.razorpay_webhook_secret.get_secret_value(),
                api_base=settings.razorpay_api_base)
    _REGISTRIES[id(settings)] = (settings, registry)
    return registry


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- top-up limits


async def _check_topup_limits(conn: AsyncConnection, settings: Settings, user_id: str,
                              tier_level: int, currency: str, total: int,
                              now: datetime) -> None:
    limits = settings.tier_for(tier_level).limits_for(currency)
    if limits.topup_max is not None and total > limits.topup_max:
        raise kyc_service.limit_refusal(settings, tier_level, currency, "topup_max",
                            limit=limits.topup_max, used=0, requested=total)
    o = payment_orders.c
    open_or_paid = ((o.status.in_(CREDITED)) | (o.status.in_(OPEN) & (o.expires_at > now)))
    if limits.topup_daily is not None:
        used = int((await conn.execute(
            select(func.coalesce(func.sum(o.amount + o.bonus), 0)).where(
                o.user_id == user_id, o.currency == currency, o.created_at >= day_start(now),
                open_or_paid))).scalar_one())
        if used + total > limits.topup_daily:
            raise kyc_service.limit_refusal(settings, tier_level, currency, "topup_daily",
                                limit=limits.topup_daily, used=used, requested=total)
    if limits.max_balance is not None:
        balance = int((await conn.execute(select(accounts.c.balance).where(
            accounts.c.address == f"user:{user_id}", accounts.c.currency == currency)
        )).scalar() or 0)
        pending = int((await conn.execute(
            select(func.coalesce(func.sum(o.amount + o.bonus), 0)).where(
                o.user_id == user_id, o.currency == currency, o.status.in_(OPEN),
                o.expires_at > now))).scalar_one())
        if balance + pending + total > limits.max_balance:
            raise kyc_service.limit_refusal(settings, tier_level, currency, "max_balance",
                                limit=limits.max_balance, used=balance + pending,
                                requested=total)


# ---------------------------------------------------------------- orders


@dataclass(frozen=True, slots=True)
class OrderPlan:
    package_id: str | None
    currency: str
    amount: int
    bonus: int
    price: int
    price_currency: str


def plan_order(settings: Settings, *, package_id: str | None, amount: int | None,
               currency: str | None) -> OrderPlan:
    if package_id is not None:
        package = settings.packages.get(package_id)
        if package is None:
            raise ValidationFailed(f"no top-up package {package_id!r}", [
                {"loc": ["body", "package_id"], "msg": "unknown package",
                 "type": "unknown_package"}])
        return OrderPlan(package.id, package.currency, package.amount, package.bonus,
                         package.price, package.price_currency)
    assert amount is not None and currency is not None
    rate = settings.rates.get(currency)
    if rate is None:
        raise ValidationFailed(
            f"top-ups by amount are not allowed in {currency!r}; choose a package", [
                {"loc": ["body", "amount"], "msg": "not allowed", "type": "amount_not_allowed"}])
    if amount % rate.per:
        raise ValidationFailed(f"the amount must be a multiple of {rate.per}", [
            {"loc": ["body", "amount"], "msg": f"multiple of {rate.per}",
             "type": "amount_step"}])
    price = amount // rate.per * rate.price
    if price > 10**12:
        raise ValidationFailed("the amount is too large", [
            {"loc": ["body", "amount"], "msg": "too large", "type": "too_large"}])
    return OrderPlan(None, currency, amount, 0, price, rate.price_currency)


async def get_order(conn: AsyncConnection, order_id: str) -> Row[Any] | None:
    return (await conn.execute(
        select(payment_orders).where(payment_orders.c.id == order_id))).first()


async def read_order(db: AsyncEngine, order_id: str) -> Row[Any]:
    async with db.connect() as conn:
        order = await get_order(conn, order_id)
    if order is None:
        raise NotFound(f"no payment order {order_id!r}")
    return order


def order_view(o: Row[Any], *, admin: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": o.id, "status": o.status, "provider": o.provider, "package_id": o.package_id,
        "currency": o.currency, "amount": o.amount, "bonus": o.bonus,
        "price": {"amount": o.price, "currency": o.price_currency},
        "checkout_url": o.checkout_url,
        "client_params": orjson.loads(o.client_params_json) if o.client_params_json else None,
        "transaction_id": o.credit_transaction_id,
        "reversal_transaction_id": o.reversal_transaction_id,
        "reversed_amount": o.reversed_amount, "debt_amount": o.debt_amount,
        "created_at": iso(o.created_at), "updated_at": iso(o.updated_at),
        "expires_at": iso(o.expires_at), "paid_at": iso(o.paid_at),
    }
    if admin:
        view.update(user_id=o.user_id, provider_order_id=o.provider_order_id,
                    provider_payment_id=o.provider_payment_id, error=o.error,
                    reversed_at=iso(o.reversed_at))
    return view


async def create_order(p: Payments, user_id: str, idem: str, *, provider_name: str,
                       package_id: str | None, amount: int | None,
                       currency: str | None) -> tuple[Row[Any], bool]:
    """Create (or, for a retried key, find) an order, then its checkout at the provider.

    The limits are checked, and the order inserted, in one transaction under the user's
    profile lock. The provider is called after that commit; if it fails the order stays
    ``created`` without a checkout and a retry with the same key tries the provider again.
    """
    provider = p.provider(provider_name)
    plan = plan_order(p.settings, package_id=package_id, amount=amount, currency=currency)
    rhash = request_hash("topup", {"provider": provider_name, "package_id": package_id,
                                   "amount": amount, "currency": currency})
    now = _now()
    replayed = False
    order_id = new_id()
    try:
        async with p.db.begin() as conn:
            found = (await conn.execute(select(payment_orders).where(
                payment_orders.c.user_id == user_id,
                payment_orders.c.idempotency_key == idem))).first()
            if found is None:
                tier = await kyc_repository.lock_profile(conn, user_id)
                await _check_topup_limits(conn, p.settings, user_id, tier, plan.currency,
                                          plan.amount + plan.bonus, now)
                await conn.execute(payment_orders.insert().values(
                    id=order_id, user_id=user_id, provider=provider_name,
                    package_id=plan.package_id, currency=plan.currency, amount=plan.amount,
                    bonus=plan.bonus, price=plan.price, price_currency=plan.price_currency,
                    status="created", idempotency_key=idem, request_hash=rhash,
                    created_at=now, updated_at=now,
                    expires_at=now + timedelta(seconds=p.settings.topup_order_ttl_s)))
    except IntegrityError:  # the same key, at the same moment, from another request
        found = None
        async with p.db.connect() as conn:
            found = (await conn.execute(select(payment_orders).where(
                payment_orders.c.user_id == user_id,
                payment_orders.c.idempotency_key == idem))).first()
        if found is None:
            raise
    if found is not None:
        if found.request_hash != rhash:
            raise IdempotencyKeyReused("this idempotency key was used with a different request")
        order_id, replayed = found.id, True
    order = await read_order(p.db, order_id)
    if order.provider_order_id is None:
        order = await _open_checkout(p, provider, order)
    return order, replayed


def return_url(settings: Settings, order_id: str, outcome: str) -> str:
    base = settings.topup_return_url or settings.public_url.rstrip("/") + "/topup-return"
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}order_id={order_id}&status={outcome}"


async def _open_checkout(p: Payments, provider: Provider, order: Row[Any]) -> Row[Any]:
    description = (f"{order.amount} {order.currency}"
                   + (f" + {order.bonus} bonus" if order.bonus else ""))
    info = OrderInfo(
        order_id=order.id, user_id=order.user_id, description=description,
        price=order.price, price_currency=order.price_currency,
        return_url=return_url(p.settings, order.id, "success"),
        cancel_url=return_url(p.settings, order.id, "cancel"),
        expires_at_s=int(order.expires_at.timestamp()),
    )
    try:
        checkout = await provider.create_checkout(info)
    except ProviderError as exc:
        log.warning("checkout for order %s failed: %s", order.id, exc)
        raise ProviderUnavailable(str(exc)) from None
    async with p.db.begin() as conn:
        await conn.execute(update(payment_orders).where(
            payment_orders.c.id == order.id,
            payment_orders.c.provider_order_id.is_(None)).values(
            provider_order_id=checkout.provider_order_id, checkout_url=checkout.checkout_url,
            client_params_json=orjson.dumps(checkout.client_params).decode(),
            updated_at=_now()))
    return await read_order(p.db, order.id)


async def find_order(conn: AsyncConnection, provider: str, *, order_id: str | None,
                     provider_order_id: str | None,
                     provider_payment_id: str | None) -> Row[Any] | None:
    o = payment_orders.c
    if provider_order_id:
        row = (await conn.execute(select(payment_orders).where(
            o.provider == provider, o.provider_order_id == provider_order_id))).first()
        if row is not None:
            return row
    if provider_payment_id:
        row = (await conn.execute(select(payment_orders).where(
            o.provider == provider, o.provider_payment_id == provider_payment_id))).first()
        if row is not None:
            return row
    if order_id:
        row = await get_order(conn, order_id)
        if row is not None and row.provider == provider:
            return row
    return None


# ---------------------------------------------------------------- debts


async def outstanding(conn: AsyncConnection, user_id: str, currency: str,
                      pending: Sequence[RowInserts] = ()) -> dict[str, int]:
    """What the user owes, by creditor: the database's rows plus those this batch's
    earlier jobs are about to insert."""
    d = user_debts.c
    rows = (await conn.execute(
        select(d.creditor, func.sum(d.amount)).where(d.user_id == user_id,
                                                     d.currency == currency)
        .group_by(d.creditor))).all()
    owed = {r[0]: int(r[1]) for r in rows}
    for table, new_rows in pending:
        if table is user_debts:
            for r in new_rows:
                if r["user_id"] == user_id and r["currency"] == currency:
                    owed[r["creditor"]] = owed.get(r["creditor"], 0) + r["amount"]
    return {c: a for c, a in owed.items() if a > 0}


async def total_debt(conn: AsyncConnection, user_id: str,
                     pending: Sequence[RowInserts] = ()) -> int:
    d = user_debts.c
    total = int((await conn.execute(select(func.coalesce(func.sum(d.amount), 0))
                                    .where(d.user_id == user_id))).scalar_one())
    for table, new_rows in pending:
        if table is user_debts:
            total += sum(r["amount"] for r in new_rows if r["user_id"] == user_id)
    return total


# ---------------------------------------------------------------- credit and reversal


def _set_order(order_id: str, **values: Any) -> SqlWrite:
    async def run(conn: AsyncConnection) -> None:
        await conn.execute(update(payment_orders).where(payment_orders.c.id == order_id)
                           .values(**values, updated_at=_now()))

    return run


async def _already(conn: AsyncConnection, order_id: str, column: Any) -> bool:
    """Re-read under the batch's locks: the order row is the lasting exactly-once record
    (idempotency claims are purged after ``COINPURSE_IDEMPOTENCY_TTL_S``)."""
    value = (await conn.execute(select(column).where(payment_orders.c.id == order_id))).scalar()
    return value is not None


def _render(outcomes: list[Outcome]) -> StoredResponse:
    for o in outcomes:
        if isinstance(o, Rejection):
            return rejection_problem(o)
    tx = next((o.id for o in outcomes if isinstance(o, Transaction)), None)
    return StoredResponse(200, orjson.dumps({"transaction_id": tx}))


async def _submit(p: Payments, order_id: str, ops: list[Operation], *, claim: Claim,
                  side_writes: SideWrites, prepare: Any,
                  lock_keys: frozenset[AccountKey], done: Any) -> None:
    """Submit a claimed job; while another request holds the claim, wait for it."""
    deadline = asyncio.get_running_loop().time() + IN_USE_WAIT_S
    while True:
        try:
            await p.ledger.submit(ops, render=_render, claim=claim, side_writes=side_writes,
                                  prepare=prepare, lock_keys=lock_keys)
            return
        except IdempotencyKeyInUse:
            # Someone else is applying it right now: wait for their commit.
            if done(await read_order(p.db, order_id)):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


def _order_metadata(order: Row[Any], payment_id: str | None) -> dict[str, Any]:
    return {"order_id": order.id, "provider": order.provider, "package_id": order.package_id,
            "provider_payment_id": payment_id,
            "price": {"amount": order.price, "currency": order.price_currency}}


async def credit(p: Payments, order_id: str, *, payment_id: str | None,
                 amount: int | None = None, currency: str | None = None) -> Row[Any]:
    """Credit a paid order exactly once; repay the user's debts from it first."""
    order = await read_order(p.db, order_id)
    if amount is not None and (amount != order.price
                               or (currency or "").lower() != order.price_currency):
        raise PaymentNotCompleted(
            f"the provider reports {amount} {currency}, the order costs {order.price} "
            f"{order.price_currency}; not credited", reason="amount_mismatch")
    if order.credit_transaction_id is not None:
        return order
    user = f"user:{order.user_id}"
    provider_account = f"provider:{order.provider}"
    promo = p.settings.promotions_address
    cur = order.currency
    postings = [Posting(provider_account, user, order.amount, cur)]
    if order.bonus:
        postings.append(Posting(promo, user, order.bonus, cur))
    spec = TransactionSpec(
        kind="topup", postings=tuple(postings),
        description=f"Top-up: {order.amount} {cur}"
        + (f" + {order.bonus} bonus" if order.bonus else ""),
        reference_id=order.id, initiator=f"provider:{order.provider}",
        metadata=_order_metadata(order, payment_id), service="payments")
    async with p.db.connect() as conn:
        creditors = set(await outstanding(conn, order.user_id, cur))
    budget = order.amount + order.bonus

    async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> list[Operation]:
        if await _already(conn, order.id, payment_orders.c.credit_transaction_id):
            return []  # credited by a commit whose claim has since been purged
        owed = await outstanding(conn, order.user_id, cur, pending)
        left, repay = budget, []
        for creditor in sorted(owed):
            take = min(owed[creditor], left)
            if take > 0 and (creditor, cur) in states:  # a newer debt waits for the next one
                repay.append(Posting(user, creditor, take, cur))
                left -= take
        if not repay:
            return [spec]
        return [dataclasses.replace(
            spec, postings=spec.postings + tuple(repay),
            metadata={**spec.metadata, "debt_repaid": budget - left})]

    def side_writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        if not outcomes:
            return []
        (outcome,) = outcomes
        if not isinstance(outcome, Transaction):
            assert isinstance(outcome, Rejection)
            return [_set_order(order.id, error=f"credit refused: {outcome.code}: "
                               f"{outcome.detail}"[:500])]
        now = outcome.created_at
        repaid = [{"user_id": order.user_id, "currency": cur, "creditor": q.destination,
                   "amount": -q.amount, "order_id": order.id, "transaction_id": outcome.id,
                   "created_at": now}
                  for q in outcome.spec.postings if q.source == user]
        return [(user_debts, repaid),
                _set_order(order.id, status="succeeded", credit_transaction_id=outcome.id,
                           provider_payment_id=payment_id or order.provider_payment_id,
                           paid_at=now, error=None)]

    claim = Claim(CLAIM_SCOPE, f"credit:{order.id}", request_hash("credit", order.id))
    await _submit(p, order.id, [spec], claim=claim, side_writes=side_writes,
                  prepare=prepare,
                  lock_keys=frozenset((c, cur) for c in creditors),
                  done=lambda o: o.credit_transaction_id is not None)
    return await read_order(p.db, order.id)


async def reverse(p: Payments, order_id: str, status: str) -> Row[Any]:
    """A refund or a lost dispute: take back what is available now, the rest becomes a
    debt. Decided under the user's account lock, once per order whatever the cause."""
    order = await read_order(p.db, order_id)
    if order.credit_transaction_id is None:
        raise NotReady("the order has not been credited yet")
    if order.reversed_at is not None:
        return order
    user = f"user:{order.user_id}"
    provider_account = f"provider:{order.provider}"
    promo = p.settings.promotions_address
    cur = order.currency
    kind = "refund" if status == "refunded" else "chargeback"
    spec = TransactionSpec(
        kind=kind, postings=tuple(
            q for q in (Posting(user, provider_account, order.amount, cur),
                        Posting(user, promo, order.bonus, cur)) if q.amount > 0),
        description="Top-up refunded" if kind == "refund" else "Top-up charged back",
        reference_id=order.id, initiator=f"provider:{order.provider}",
        metadata=_order_metadata(order, order.provider_payment_id), service="payments")

    skipped: list[bool] = []

    async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> list[Operation]:
        if await _already(conn, order.id, payment_orders.c.reversed_at):
            skipped.append(True)
            return []
        take = min(max(states[(user, cur)].available, 0), order.amount + order.bonus)
        to_provider = min(take, order.amount)
        legs = [q for q in (Posting(user, provider_account, to_provider, cur),
                            Posting(user, promo, take - to_provider, cur)) if q.amount > 0]
        return [dataclasses.replace(spec, postings=tuple(legs))] if legs else []

    def side_writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        tx = next((o for o in outcomes if isinstance(o, Transaction)), None)
        if skipped or any(isinstance(o, Rejection) for o in outcomes):
            return []
        now = _now()
        taken = {q.destination: q.amount for q in (tx.spec.postings if tx else ())}
        owed = {provider_account: order.amount - taken.get(provider_account, 0),
                promo: order.bonus - taken.get(promo, 0)}
        debts = [{"user_id": order.user_id, "currency": cur, "creditor": c, "amount": a,
                  "order_id": order.id, "transaction_id": tx.id if tx else None,
                  "created_at": now} for c, a in owed.items() if a > 0]
        return [(user_debts, debts),
                _set_order(order.id, status=status,
                           reversal_transaction_id=tx.id if tx else None,
                           reversed_amount=sum(taken.values()), debt_amount=sum(owed.values()),
                           reversed_at=now)]

    claim = Claim(CLAIM_SCOPE, f"reverse:{order.id}", request_hash("reverse", order.id))
    await _submit(p, order.id, [spec], claim=claim, side_writes=side_writes,
                  prepare=prepare, lock_keys=frozenset({(user, cur)}),
                  done=lambda o: o.reversed_at is not None)
    return await read_order(p.db, order.id)


async def set_status(db: AsyncEngine, order_id: str, status: str, *, when: Sequence[str],
                     extra: Mapping[str, Any] | None = None,
                     credited: bool | None = None) -> bool:
    """A state change that moves no money (pending, failed, disputed, dispute won)."""
    o = payment_orders.c
    stmt = update(payment_orders).where(o.id == order_id, o.status.in_(when))
    if credited is True:
        stmt = stmt.where(o.credit_transaction_id.is_not(None), o.reversed_at.is_(None))
    elif credited is False:
        stmt = stmt.where(o.credit_transaction_id.is_(None))
    async with db.begin() as conn:
        result = await conn.execute(stmt.values(status=status, updated_at=_now(),
                                                **(extra or {})))
    return bool(result.rowcount)


async def list_orders(db: AsyncEngine, *, user_id: str | None = None,
                      status: str | None = None, provider: str | None = None,
                      before: str | None = None, limit: int = 50) -> tuple[list[Row[Any]],
                                                                            str | None]:
    rows, next_id = await newest_first(
        db, payment_orders, equal={"user_id": user_id, "status": status, "provider": provider},
        before=before, limit=limit)
    return rows, next_id

