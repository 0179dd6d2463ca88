"""Top-up orders and webhook events as the rest of the code sees them (no rows, no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

OPEN = ("created", "pending")
CREDITED = ("succeeded", "refunded", "disputed")


@dataclass(frozen=True, slots=True)
class Price:
    """What the user pays, in an ISO currency's minor units (999 usd = 9.99 USD)."""

    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    id: str
    user_id: str
    status: str  # created, pending, succeeded, failed, refunded, disputed
    provider: str
    package_id: str | None
    currency: str
    amount: int
    bonus: int
    price: Price
    checkout_url: str | None
    client_params: dict[str, Any] | None
    transaction_id: str | None  # the credit; set once, in the credit's own commit
    reversal_transaction_id: str | None
    reversed_amount: int
    debt_amount: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    reversed_at: datetime | None  # set once, in the reversal's own commit
    provider_order_id: str | None
    provider_payment_id: str | None
    error: str | None
    request_hash: str

    @property
    def total(self) -> int:
        """What the order credits: the amount and its bonus."""
        return self.amount + self.bonus

    def event_data(self, **changed: Any) -> dict[str, Any]:
        """The data of its ``topup.*`` events (``changed``: what the event's commit sets)."""
        return {"order_id": self.id, "user_id": self.user_id, "provider": self.provider,
                "package_id": self.package_id, "currency": self.currency,
                "amount": self.amount, "bonus": self.bonus, "price": self.price.amount,
                "price_currency": self.price.currency, "status": self.status,
                "transaction_id": self.transaction_id, **changed}


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """What an order will credit and cost, before it exists."""

    package_id: str | None
    currency: str
    amount: int
    bonus: int
    price: Price


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """A provider's webhook event as stored on arrival, with its processing state."""

    id: int
    provider: str
    event_id: str
    event_type: str
    status: str  # received (waiting or retrying), processed, ignored, failed
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    order_id: str | None
    received_at: datetime
    processed_at: datetime | None
    raw_body: bytes

    @property
    def body(self) -> Any:
        """The body as JSON, or as text when it is not JSON (an unreadable event)."""
        try:
            return orjson.loads(self.raw_body)
        except orjson.JSONDecodeError:
            return self.raw_body.decode(errors="replace")
