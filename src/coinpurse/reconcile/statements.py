"""Providers' statements: their list of successful payments for a period, read through
their SDKs (synchronous: call them in a worker thread), and the comparison with the orders
paid here.

Stripe: Checkout Sessions created in the period (``status=complete``), paid ones; the
session id is the order's ``provider_order_id``. Razorpay: payments created in the period
(``from``/``to``), ``captured`` ones; their ``order_id`` is the order's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import razorpay as razorpay_sdk
import requests
import stripe as stripe_sdk

from coinpurse.payments.model import CREDITED
from coinpurse.payments.settings import PaymentSettings
from coinpurse.reconcile.model import Discrepancy, OrderRow, ProviderPayment

PAGE = 100
PAGES_MAX = 10_000  # a bound on any statement: a million payments per period
TIMEOUT_S = 30


class NotConfigured(Exception):
    """This provider is not enabled here, so its statement cannot be read."""


class StatementError(Exception):
    """The provider could not be reached or refused the request."""


class StatementReader(Protocol):
    def successful_payments(self, start: datetime, end: datetime) -> list[ProviderPayment]:
        """Successful payments created in [start, end)."""


def _ts(value: datetime) -> int:
    return int(value.timestamp())


def _str(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


class StripeStatement:
    def __init__(self, secret_key: str, api_base: str | None) -> None:
        self._client = stripe_sdk.StripeClient(
            secret_key, base_addresses={"api": api_base} if api_base else None,
            max_network_retries=2)

    def successful_payments(self, start: datetime, end: datetime) -> list[ProviderPayment]:
        params: dict[str, Any] = {"created": {"gte": _ts(start), "lt": _ts(end)},
                                  "status": "complete", "limit": PAGE}
        found: list[ProviderPayment] = []
        try:
            page = self._client.v1.checkout.sessions.list(params)  # type: ignore[arg-type]
            for n, session in enumerate(page.auto_paging_iter()):
                if n >= PAGE * PAGES_MAX:
                    raise StatementError("stripe: the statement is longer than we read")
                if session.payment_status not in ("paid", "no_payment_required"):
                    continue
                metadata: Any = session.metadata or {}
                found.append(ProviderPayment(
                    provider="stripe",
                    payment_id=_str(session.payment_intent) or session.id,
                    provider_order_id=session.id,
                    order_id=session.client_reference_id or metadata.get("order_id"),
                    amount=int(session.amount_total or 0),
                    currency=str(session.currency or "").lower(),
                    created_at=datetime.fromtimestamp(int(session.created), UTC)))
        except stripe_sdk.StripeError as exc:
            raise StatementError(f"stripe: {exc.user_message or exc}") from None
        return found


class RazorpayStatement:
    def __init__(self, key_id: str, key_secret: str, api_base: str | None) -> None:
        options: dict[str, Any] = {"base_url": api_base} if api_base else {}
        self._client = razorpay_sdk.Client(auth=(key_id, key_secret), **options)

    def successful_payments(self, start: datetime, end: datetime) -> list[ProviderPayment]:
        found: list[ProviderPayment] = []
        try:
            for n in range(PAGES_MAX):
                page = self._client.payment.all(
                    {"from": _ts(start), "to": _ts(end) - 1, "count": PAGE, "skip": n * PAGE},
                    timeout=TIMEOUT_S)
                items = page.get("items") or []
                for p in items:
                    if p.get("status") != "captured":
                        continue
                    notes = p.get("notes") if isinstance(p.get("notes"), dict) else {}
                    found.append(ProviderPayment(
                        provider="razorpay", payment_id=str(p["id"]),
                        provider_order_id=_str(p.get("order_id")),
                        order_id=_str(notes.get("order_id")), amount=int(p["amount"]),
                        currency=str(p.get("currency") or "").lower(),
                        created_at=datetime.fromtimestamp(int(p["created_at"]), UTC)))
                if len(items) < PAGE:
                    return found
        except (razorpay_sdk.errors.BadRequestError, razorpay_sdk.errors.ServerError,
                razorpay_sdk.errors.GatewayError, requests.RequestException, KeyError,
                TypeError, ValueError) as exc:
            raise StatementError(f"razorpay: {exc}") from None
        raise StatementError("razorpay: the statement is longer than we read")


def reader(provider: str, settings: PaymentSettings) -> StatementReader:
    if provider not in settings.providers:
        raise NotConfigured(f"{provider} is not in COINPURSE_TOPUP_PROVIDERS, so there is no "
                            "statement to compare with")
    if provider == "stripe" and settings.stripe_secret_key is not None:
        return StripeStatement(settings.stripe_secret_key.get_secret_value(),
                               settings.stripe_api_base)
    if provider == "razorpay" and settings.razorpay_key_id \
            and settings.razorpay_key_secret is not None:
        return RazorpayStatement(settings.razorpay_key_id,
                                 settings.razorpay_key_secret.get_secret_value(),
                                 settings.razorpay_api_base)
    raise NotConfigured(f"{provider} has no statement to read (stripe or razorpay, with "
                        "their keys)")


def compare(provider: str, in_period: Sequence[ProviderPayment],
            paid_around: Sequence[ProviderPayment], ours: Sequence[OrderRow],
            by_provider_order: Mapping[str, OrderRow]) -> list[Discrepancy]:
    """Missing: paid at the provider in the period, not paid here. Extra: paid here in the
    period, with no successful payment at the provider (looked for a day around it)."""
    found: list[Discrepancy] = []
    for p in in_period:
        order = by_provider_order.get(p.provider_order_id or "")
        if order is None or order.status not in CREDITED:
            state = "no order here" if order is None else f"order {order.id} is {order.status}"
            found.append(Discrepancy(
                "provider_payment_not_credited", "provider_payment", p.payment_id,
                f"{provider} payment {p.payment_id} of {p.amount} {p.currency} for "
                f"{p.provider_order_id} succeeded, but {state}",
                expected="a paid order", actual=order.status if order else None))
        elif p.amount != order.price or p.currency != order.price_currency.lower():
            found.append(Discrepancy(
                "provider_amount_mismatch", "payment_order", order.id,
                f"order {order.id} costs {order.price} {order.price_currency}, {provider} "
                f"payment {p.payment_id} is {p.amount} {p.currency}",
                expected=order.price, actual=p.amount))
    paid_for = {p.provider_order_id for p in paid_around}
    for o in ours:
        if o.provider_order_id not in paid_for:
            found.append(Discrepancy(
                "order_not_paid_at_provider", "payment_order", o.id,
                f"order {o.id} was paid here ({o.status}, {o.price} {o.price_currency}) but "
                f"{provider} lists no successful payment for {o.provider_order_id}",
                expected="a successful payment", actual=None))
    return found
