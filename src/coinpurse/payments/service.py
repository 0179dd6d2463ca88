"""Top-ups: payment orders and their checkout at a provider, the KYC tier's top-up limits,
and the debts a refund can leave behind.

An order's money moves in ``credits.py`` (exactly once, through the ledger); provider
webhooks arrive through ``inbox.py``. Providers are called outside any database
transaction: no lock is held across a network call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.bonuses import service as bonuses
from coinpurse.bonuses.settings import BonusSettings
from coinpurse.core import metrics
from coinpurse.core.clock import day_start, utcnow
from coinpurse.core.errors import CoinpurseError, NotFound, ValidationFailed
from coinpurse.core.ids import new_id
from coinpurse.events.service import emit
from coinpurse.kyc import service as kyc_service
from coinpurse.kyc.settings import KycSettings
from coinpurse.ledger import queries
from coinpurse.ledger.errors import IdempotencyKeyReused
from coinpurse.ledger.idempotency import request_hash
from coinpurse.ledger.service import Ledger, RowInserts
from coinpurse.payments import repository as repo
from coinpurse.payments.errors import ProviderNotEnabled, ProviderUnavailable
from coinpurse.payments.model import OrderPlan, PaymentOrder, Price
from coinpurse.payments.packages import PRICE_MAX
from coinpurse.payments.providers.base import OrderInfo, Provider, ProviderError
from coinpurse.payments.providers.registry import providers
from coinpurse.payments.settings import PaymentSettings

log = logging.getLogger("coinpurse.payments")


class NotReady(Exception):
    """The event cannot be applied yet (its order is not paid or not found): retry later."""


@dataclass(frozen=True, slots=True)
class Payments:
    """What the payment logic needs; built by the routes and by the inbox job."""

    db: AsyncEngine
    ledger: Ledger
    settings: PaymentSettings
    kyc: KycSettings  # the tiers whose top-up limits orders are checked against
    bonus: BonusSettings  # the deposit matches and referral rewards a credit grants

    def provider(self, name: str) -> Provider:
        registry = providers(self.settings)
        if name not in registry:
            raise ProviderNotEnabled(f"{name!r} is not enabled; enabled: "
                                     + ", ".join(registry))
        return registry[name]


async def inbox_backlog(db: AsyncEngine) -> tuple[int, float]:
    """How many provider events wait to be applied, and the oldest one's age in seconds
    (for the operators' metrics)."""
    async with db.connect() as conn:
        count, oldest = await repo.inbox_backlog(conn)
    return count, (utcnow() - oldest).total_seconds() if oldest is not None else 0.0


# ---------------------------------------------------------------- orders


def plan_order(settings: PaymentSettings, *, package_id: str | None, amount: int | None,
               currency: str | None) -> OrderPlan:
    """What a package, or an amount at the currency's rate, credits and costs."""
    if package_id is not None:
        package = settings.packages.get(package_id)
        if package is None:
            raise ValidationFailed(f"no top-up package {package_id!r}", [
                {"loc": ["body", "package_id"], "msg": "unknown package",
                 "type": "unknown_package"}])
        return OrderPlan(package.id, package.currency, package.amount, package.bonus,
                         Price(package.price, package.price_currency))
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
    if price > PRICE_MAX:
        raise ValidationFailed("the amount is too large", [
            {"loc": ["body", "amount"], "msg": "too large", "type": "too_large"}])
    return OrderPlan(None, currency, amount, 0, Price(price, rate.price_currency))


async def read_order(db: AsyncEngine, order_id: str) -> PaymentOrder:
    async with db.connect() as conn:
        order = await repo.get_order(conn, order_id)
    if order is None:
        raise NotFound(f"no payment order {order_id!r}")
    return order


async def own_order(db: AsyncEngine, user_id: str, order_id: str) -> PaymentOrder:
    """One of the user's orders; someone else's is as unknown as a missing one."""
    order = await read_order(db, order_id)
    if order.user_id != user_id:
        raise NotFound(f"no payment order {order_id!r}")
    return order


async def mock_order(p: Payments, order_id: str) -> PaymentOrder:
    """An order the mock checkout page may show and pay (only where mock is enabled)."""
    if "mock" not in p.settings.providers:
        raise NotFound("the mock provider is not enabled")
    async with p.db.connect() as conn:
        order = await repo.get_order(conn, order_id)
    if order is None or order.provider != "mock":
        raise NotFound(f"no mock payment order {order_id!r}")
    return order


async def list_orders(db: AsyncEngine, *, user_id: str | None = None,
                      status: str | None = None, provider: str | None = None,
                      before: str | None = None, limit: int = 50
                      ) -> tuple[list[PaymentOrder], str | None]:
    return await repo.list_orders(db, user_id=user_id, status=status, provider=provider,
                                  before=before, limit=limit)


async def create_order(p: Payments, user_id: str, idem: str, *, provider_name: str,
                       package_id: str | None, amount: int | None,
                       currency: str | None, promo_code: str | None = None
                       ) -> tuple[PaymentOrder, bool]:
    """Create (or, for a retried key, find) an order, then its checkout at the provider;
    returns the order and whether it was a retry.

    The provider is called after the order's commit; if it fails the order stays
    ``created`` without a checkout and a retry with the same key tries the provider again.
    """
    if currency is not None:
        p.settings.currency(currency)
    provider = p.provider(provider_name)
    plan = plan_order(p.settings, package_id=package_id, amount=amount, currency=currency)
    asked: dict[str, Any] = {"provider": provider_name, "package_id": package_id,
                             "amount": amount, "currency": currency}
    if promo_code is not None:  # hashed only when sent: older keys still match
        asked["promo_code"] = promo_code.upper()
    rhash = request_hash("topup", asked)
    order, replayed = await _order_for_key(p, user_id, idem, provider_name, plan, rhash,
                                           promo_code)
    if order.provider_order_id is None:
        order = await _open_checkout(p, provider, order)
    return order, replayed


async def _order_for_key(p: Payments, user_id: str, idem: str, provider_name: str,
                         plan: OrderPlan, rhash: str, promo_code: str | None
                         ) -> tuple[PaymentOrder, bool]:
    """A new order, or the one this key already made. The limits are checked, and the order
    inserted (with its promo code's deposit match), in one transaction under the user's KYC
    profile lock."""
    now = utcnow()
    order_id = new_id()
    try:
        async with p.db.begin() as conn:
            found = await repo.order_by_key(conn, user_id, idem)
            if found is None:
                level = await kyc_service.lock_tier(conn, user_id)
                await _check_limits(p.kyc, conn, user_id, level, plan, now)
                promo = None if promo_code is None else await bonuses.topup_promotion(
                    conn, promo_code, currency=plan.currency, deposit=plan.amount, now=now)
                await repo.insert_order(
                    conn, order_id=order_id, user_id=user_id, provider=provider_name,
                    plan=plan, idem=idem, request_hash=rhash, now=now,
                    expires_at=now + timedelta(seconds=p.settings.topup_order_ttl_s))
                if promo is not None:
                    await bonuses.attach_to_order(conn, order_id, user_id, promo)
    except IntegrityError:  # the same key, at the same moment, from another request
        async with p.db.connect() as conn:
            found = await repo.order_by_key(conn, user_id, idem)
        if found is None:
            raise
    if found is None:
        return await read_order(p.db, order_id), False
    if found.request_hash != rhash:
        raise IdempotencyKeyReused("this idempotency key was used with a different request")
    return found, True


async def _check_limits(kyc: KycSettings, conn: AsyncConnection, user_id: str, level: int,
                        plan: OrderPlan, now: datetime) -> None:
    """The tier's top-up limits: per order, per day (paid and open orders), and the balance
    the user would reach if every open order were paid."""
    currency, total = plan.currency, plan.amount + plan.bonus
    limits = kyc.tier_for(level).limits_for(currency)

    def refusal(name: str, limit: int, used: int) -> CoinpurseError:
        return kyc_service.limit_refusal(kyc, level, currency, name, limit=limit, used=used,
                                         requested=total)

    if limits.topup_max is not None and total > limits.topup_max:
        raise refusal("topup_max", limits.topup_max, 0)
    if limits.topup_daily is not None:
        used = await repo.topups_since(conn, user_id, currency, day_start(now), now)
        if used + total > limits.topup_daily:
            raise refusal("topup_daily", limits.topup_daily, used)
    if limits.max_balance is not None:
        wallet = (await queries.balances(conn, f"user:{user_id}", [currency]))[currency]
        pending = await repo.open_total(conn, user_id, currency, now)
        if wallet.balance + pending + total > limits.max_balance:
            raise refusal("max_balance", limits.max_balance, wallet.balance + pending)


def return_url(settings: PaymentSettings, order_id: str, outcome: str) -> str:
    base = settings.topup_return_url or settings.public_url.rstrip("/") + "/topup-return"
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}order_id={order_id}&status={outcome}"


async def _open_checkout(p: Payments, provider: Provider, order: PaymentOrder
                         ) -> PaymentOrder:
    info = OrderInfo(
        order_id=order.id, user_id=order.user_id, description=describe(order),
        price=order.price.amount, price_currency=order.price.currency,
        return_url=return_url(p.settings, order.id, "success"),
        cancel_url=return_url(p.settings, order.id, "cancel"),
        expires_at_s=int(order.expires_at.timestamp()),
    )
    started = time.perf_counter()
    try:
        checkout = await provider.create_checkout(info)
    except ProviderError as exc:  # the provider's own words go to the log, not the user
        metrics.record_delivery(f"{order.provider}.checkout", "failed",
                                time.perf_counter() - started)
        log.warning("checkout for order %s failed: %s", order.id, exc)
        raise ProviderUnavailable(
            f"{order.provider} could not be reached to open the checkout; retry with the "
            "same idempotency key") from None
    metrics.record_delivery(f"{order.provider}.checkout", "ok", time.perf_counter() - started)
    async with p.db.begin() as conn:
        await repo.set_checkout(conn, order.id, provider_order_id=checkout.provider_order_id,
                                checkout_url=checkout.checkout_url,
                                client_params=checkout.client_params)
    return await read_order(p.db, order.id)


def describe(order: PaymentOrder) -> str:
    """What the order buys, as the checkout shows it: "1000 coins + 200 bonus"."""
    return f"{order.amount} {order.currency}" + (f" + {order.bonus} bonus" if order.bonus
                                                 else "")


async def find_order(db: AsyncEngine, provider: str, *, order_id: str | None,
                     provider_order_id: str | None,
                     provider_payment_id: str | None) -> PaymentOrder | None:
    """The order an event is about: by the provider's order id, its payment id, or ours."""
    async with db.connect() as conn:
        if provider_order_id:
            order = await repo.order_by_provider_order(conn, provider, provider_order_id)
            if order is not None:
                return order
        if provider_payment_id:
            order = await repo.order_by_provider_payment(conn, provider, provider_payment_id)
            if order is not None:
                return order
        if order_id:
            order = await repo.get_order(conn, order_id)
            if order is not None and order.provider == provider:
                return order
    return None


async def set_status(db: AsyncEngine, order_id: str, status: str, *, when: Sequence[str],
                     extra: Mapping[str, Any] | None = None,
                     credited: bool | None = None) -> bool:
    """A state change that moves no money (pending, failed, disputed, dispute won)."""
    async with db.begin() as conn:
        changed = await repo.change_status(conn, order_id, status, when=when,
                                           credited=credited, values=dict(extra or {}))
        order = await repo.get_order(conn, order_id) if changed and status == "failed" else None
        if order is not None:
            await emit(conn, "topup.failed", order.event_data())
        return changed


# ---------------------------------------------------------------- debts


async def outstanding(conn: AsyncConnection, user_id: str, currency: str,
                      pending: Sequence[RowInserts] = ()) -> dict[str, int]:
    """What the user owes, by creditor: the database's rows plus those this batch's
    earlier jobs are about to insert."""
    owed = await repo.debts_by_creditor(conn, user_id, currency, pending)
    return {c: a for c, a in owed.items() if a > 0}


async def total_debt(conn: AsyncConnection, user_id: str,
                     pending: Sequence[RowInserts] = ()) -> int:
    """Withdrawals wait while this is above zero."""
    return await repo.debt_total(conn, user_id, pending)
