"""Razorpay: orders through the ``razorpay`` SDK; the client's payment signature (HMAC of
``order_id|payment_id`` with the key secret) and webhooks (``X-Razorpay-Signature``, HMAC of
the raw body with the webhook secret) checked with the SDK's ``Utility``.

The SDK is synchronous; its calls run in a worker thread, outside any database transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import razorpay as razorpay_sdk
import requests

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

SIGNATURE_HEADER = "x-razorpay-signature"
EVENT_ID_HEADER = "x-razorpay-event-id"
KINDS: dict[str, EventKind] = {
    "payment.captured": "payment_succeeded",
    "order.paid": "payment_succeeded",
    "payment.authorized": "payment_pending",
    "payment.failed": "payment_failed",
    "refund.processed": "refunded",
    "payment.dispute.created": "dispute_opened",
    "payment.dispute.won": "dispute_won",
    "payment.dispute.lost": "dispute_lost",
}
TIMEOUT_S = 15


class RazorpayProvider:
    name = "razorpay"

    def __init__(self, key_id: str, key_secret: str, webhook_secret: str, *,
                 api_base: str | None = None) -> None:
        options: dict[str, Any] = {"base_url": api_base} if api_base else {}
        self._client = razorpay_sdk.Client(auth=(key_id, key_secret), **options)
        self._key_id = key_id
        self._webhook_secret = webhook_secret

    async def create_checkout(self, order: OrderInfo) -> Checkout:
        data = {"amount": order.price, "currency": order.price_currency.upper(),
                "receipt": order.order_id, "notes": {"order_id": order.order_id}}
        try:
            created = await asyncio.to_thread(self._client.order.create, data,
                                              timeout=TIMEOUT_S)
        except (razorpay_sdk.errors.BadRequestError, razorpay_sdk.errors.ServerError,
                razorpay_sdk.errors.GatewayError, requests.RequestException,
                ValueError) as exc:
            raise ProviderError(f"razorpay: {exc}") from None
        provider_order_id = str(created["id"])
        return Checkout(provider_order_id=provider_order_id, checkout_url=None, client_params={
            "key": self._key_id, "order_id": provider_order_id, "amount": order.price,
            "currency": order.price_currency.upper(), "description": order.description,
            "notes": {"order_id": order.order_id},
        })

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        signature = headers.get(SIGNATURE_HEADER)
        if not signature:
            raise SignatureError("no X-Razorpay-Signature header")
        try:
            self._client.utility.verify_webhook_signature(body.decode(), signature,
                                                          self._webhook_secret)
        except (razorpay_sdk.errors.SignatureVerificationError, UnicodeDecodeError):
            raise SignatureError("the X-Razorpay-Signature does not match the body") from None

    def parse_event(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        event = json.loads(body)
        etype = str(event["event"])
        # Razorpay names each delivery in a header; the body itself has no id.
        event_id = headers.get(EVENT_ID_HEADER) or "sha256:" + hashlib.sha256(body).hexdigest()
        payload = event.get("payload") or {}
        payment = ((payload.get("payment") or {}).get("entity")) or {}
        order = ((payload.get("order") or {}).get("entity")) or {}
        refund = ((payload.get("refund") or {}).get("entity")) or {}
        dispute = ((payload.get("dispute") or {}).get("entity")) or {}
        notes = payment.get("notes") or order.get("notes") or {}
        full = True
        paid = payment.get("amount")
        if refund:
            paid = refund.get("amount")
            full = payment.get("amount_refunded", paid) == payment.get("amount", paid)
        currency = text(payment.get("currency"))
        return ProviderEvent(
            event_id=event_id, type=etype, kind=KINDS.get(etype, "ignored"),
            order_id=text(notes.get("order_id")) if isinstance(notes, dict) else None,
            provider_order_id=text(payment.get("order_id")) or text(order.get("id")),
            provider_payment_id=text(payment.get("id")) or text(refund.get("payment_id"))
            or text(dispute.get("payment_id")),
            amount=amount(paid), currency=currency.lower() if currency else None, full=full,
        )

    async def confirm(self, order_id: str, provider_order_id: str,
                      params: Mapping[str, Any]) -> Confirmation | None:
        fields = ("razorpay_order_id", "razorpay_payment_id", "razorpay_signature")
        if not all(isinstance(params.get(f), str) for f in fields):
            raise SignatureError("send razorpay_order_id, razorpay_payment_id and "
                                 "razorpay_signature from the checkout")
        if params["razorpay_order_id"] != provider_order_id:
            raise SignatureError("razorpay_order_id is not this order's")
        try:
            self._client.utility.verify_payment_signature(
                {f: params[f] for f in fields})
        except razorpay_sdk.errors.SignatureVerificationError:
            raise SignatureError("the payment signature does not match") from None
        return Confirmation(provider_payment_id=str(params["razorpay_payment_id"]))
