"""Stripe: Checkout Sessions through the ``stripe`` SDK, webhooks checked with the SDK's own
``Stripe-Signature`` verification (timestamp tolerance, constant-time comparison, any of
several ``v1`` signatures). Several webhook secrets may be configured during a rotation.

The SDK is synchronous; its calls run in a worker thread, outside any database transaction.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import stripe as stripe_sdk

from coinpurse.payments.providers.base import (
    Checkout,
    Confirmation,
    EventKind,
    OrderInfo,
    ProviderError,
    ProviderEvent,
    SignatureError,
    amount,
    text,
)

SIGNATURE_HEADER = "stripe-signature"
SESSION_KINDS: dict[str, EventKind] = {
    "checkout.session.async_payment_succeeded": "payment_succeeded",
    "checkout.session.async_payment_failed": "payment_failed",
    "checkout.session.expired": "payment_failed",
}


def _id(value: Any) -> str | None:
    """An id that Stripe may send as a string or as an expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


class StripeProvider:
    name = "stripe"

    def __init__(self, secret_key: str, webhook_secrets: list[str], *, tolerance_s: int,
                 api_base: str | None = None) -> None:
        self._client = stripe_sdk.StripeClient(
            secret_key, base_addresses={"api": api_base} if api_base else None,
            max_network_retries=2)
        self._secrets = webhook_secrets
        self._tolerance_s = tolerance_s

    async def create_checkout(self, order: OrderInfo) -> Checkout:
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [{"quantity": 1, "price_data": {
                "currency": order.price_currency, "unit_amount": order.price,
                "product_data": {"name": order.description}}}],
            "success_url": order.return_url,
            "cancel_url": order.cancel_url,
            "client_reference_id": order.order_id,
            "metadata": {"order_id": order.order_id, "user_id": order.user_id},
            "payment_intent_data": {"metadata": {"order_id": order.order_id}},
            "expires_at": order.expires_at_s,
        }
        try:
            # Stripe's own idempotency: a retried create returns the same session.
            session = await asyncio.to_thread(
                self._client.v1.checkout.sessions.create, params,  # type: ignore[arg-type]
                {"idempotency_key": f"coinpurse-order-{order.order_id}"})
        except stripe_sdk.StripeError as exc:
            raise ProviderError(f"stripe: {exc.user_message or exc}") from None
        return Checkout(provider_order_id=session.id, checkout_url=session.url,
                        client_params={"session_id": session.id})

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        header = headers.get(SIGNATURE_HEADER)
        if not header:
            raise SignatureError("no Stripe-Signature header")
        for secret in self._secrets:
            try:
                stripe_sdk.WebhookSignature.verify_header(body, header, secret,
                                                          self._tolerance_s)
                return
            except (stripe_sdk.SignatureVerificationError, UnicodeDecodeError, ValueError):
                continue
        raise SignatureError("the Stripe-Signature does not match the body, or is too old")

    def parse_event(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        event = json.loads(body)
        etype = str(event["type"])
        obj = event["data"]["object"]
        meta = obj.get("metadata") or {}
        base: dict[str, Any] = {"event_id": str(event["id"]), "type": etype,
                                "order_id": text(meta.get("order_id"))}
        if etype.startswith("checkout.session."):
            kind = SESSION_KINDS.get(etype, "ignored")
            if etype == "checkout.session.completed":
                paid = obj.get("payment_status") in ("paid", "no_payment_required")
                kind = "payment_succeeded" if paid else "payment_pending"
            return ProviderEvent(
                **{**base, "order_id": text(obj.get("client_reference_id")) or base["order_id"]},
                kind=kind, provider_order_id=text(obj.get("id")),
                provider_payment_id=_id(obj.get("payment_intent")),
                amount=amount(obj.get("amount_total")), currency=text(obj.get("currency")))
        if etype == "charge.refunded":
            full = bool(obj.get("refunded")) or obj.get("amount_refunded") == obj.get("amount")
            return ProviderEvent(**base, kind="refunded",
                                 provider_payment_id=_id(obj.get("payment_intent")),
                                 amount=amount(obj.get("amount_refunded")),
                                 currency=text(obj.get("currency")), full=full)
        if etype in ("charge.dispute.created", "charge.dispute.closed"):
            kind = "dispute_opened"
            if etype == "charge.dispute.closed":
                kind = {"lost": "dispute_lost", "won": "dispute_won"}.get(
                    str(obj.get("status")), "ignored")  # type: ignore[assignment]
            return ProviderEvent(**base, kind=kind,
                                 provider_payment_id=_id(obj.get("payment_intent")),
                                 amount=amount(obj.get("amount")),
                                 currency=text(obj.get("currency")))
        return ProviderEvent(**base, kind="ignored")

    async def confirm(self, order_id: str, provider_order_id: str,
                      params: Mapping[str, Any]) -> Confirmation | None:
        try:
            session = await asyncio.to_thread(self._client.v1.checkout.sessions.retrieve,
                                              provider_order_id)
        except stripe_sdk.StripeError as exc:
            raise ProviderError(f"stripe: {exc.user_message or exc}") from None
        if session.payment_status not in ("paid", "no_payment_required"):
            return None
        return Confirmation(provider_payment_id=_id(session.payment_intent),
                            amount=amount(session.amount_total),
                            currency=text(session.currency))
