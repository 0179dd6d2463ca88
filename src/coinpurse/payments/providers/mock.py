"""The development provider: Coinpurse serves the checkout page itself (``/mock-checkout``)
and the page's Pay button sends a signed webhook to ``/webhooks/mock``, so the whole top-up
flow runs on one machine. Its webhooks are signed with Stripe's scheme (checked with the
Stripe SDK's own helper) under ``COINPURSE_MOCK_WEBHOOK_SECRET``. Never enable it where real
users can reach it: anyone with an order id can "pay".
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
import stripe

from coinpurse.payments.providers.base import (
    Checkout,
    Confirmation,
    EventKind,
    OrderInfo,
    ProviderEvent,
    SignatureError,
    amount,
    text,
)

SIGNATURE_HEADER = "coinpurse-mock-signature"
TOLERANCE_S = 300
KINDS: dict[str, EventKind] = {
    "payment.succeeded": "payment_succeeded",
    "payment.pending": "payment_pending",
    "payment.failed": "payment_failed",
    "refund.succeeded": "refunded",
    "dispute.created": "dispute_opened",
    "dispute.won": "dispute_won",
    "dispute.lost": "dispute_lost",
}


def payment_signature(secret: str, order_id: str, payment_id: str) -> str:
    """What the checkout hands the client to prove a payment (Razorpay's scheme)."""
    return hmac.new(secret.encode(), f"{order_id}|{payment_id}".encode(),
                    hashlib.sha256).hexdigest()


def sign_event(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header of a webhook body, as the mock provider sends it."""
    return str(stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp or int(time.time())))


def event_body(event_id: str, type_: str, *, order_id: str, payment_id: str | None,
               amount: int, currency: str) -> bytes:
    return orjson.dumps({
        "id": event_id, "type": type_, "created": int(time.time()),
        "data": {"order_id": order_id, "payment_id": payment_id, "amount": amount,
                 "currency": currency},
    })


def checkout_event(secret: str, *, order_id: str, price: int, price_currency: str,
                   pay: bool) -> tuple[bytes, dict[str, str], str]:
    """What the checkout page's Pay or Decline button sends, as a provider would: the
    webhook's body and headers (signed), and the payment's id."""
    payment_id = f"mockpay_{uuid.uuid4().hex}"
    body = event_body(f"evt_mock_{uuid.uuid4().hex}",
                      "payment.succeeded" if pay else "payment.failed", order_id=order_id,
                      payment_id=payment_id, amount=price, currency=price_currency)
    headers = {SIGNATURE_HEADER: sign_event(secret, body), "content-type": "application/json"}
    return body, headers, payment_id


class MockProvider:
    name = "mock"

    def __init__(self, secret: str, public_url: str) -> None:
        self._secret = secret
        self._public_url = public_url.rstrip("/")

    async def create_checkout(self, order: OrderInfo) -> Checkout:
        return Checkout(provider_order_id=order.order_id,
                        checkout_url=f"{self._public_url}/mock-checkout/{order.order_id}")

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        try:
            stripe.WebhookSignature.verify_header(
                body, headers.get(SIGNATURE_HEADER), self._secret, TOLERANCE_S)
        except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
            raise SignatureError(f"the {SIGNATURE_HEADER} header does not match the body, "
                                 "or is too old") from None

    def parse_event(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        event = orjson.loads(body)
        data = event["data"]
        return ProviderEvent(
            event_id=str(event["id"]), type=str(event["type"]),
            kind=KINDS.get(str(event["type"]), "ignored"), order_id=text(data["order_id"]),
            provider_order_id=text(data["order_id"]),
            provider_payment_id=text(data.get("payment_id")),
            amount=amount(data.get("amount")), currency=text(data.get("currency")),
            full=data.get("full", True) is True,
        )

    async def confirm(self, order_id: str, provider_order_id: str,
                      params: Mapping[str, Any]) -> Confirmation | None:
        payment_id = params.get("payment_id")
        signature = params.get("signature")
        if not isinstance(payment_id, str) or not isinstance(signature, str):
            raise SignatureError("send the payment_id and signature the checkout returned")
        expected = payment_signature(self._secret, order_id, payment_id)
        if not hmac.compare_digest(expected, signature):
            raise SignatureError("the payment signature does not match")
        return Confirmation(provider_payment_id=payment_id)
