"""One interface for every payment provider: create a checkout, check a webhook's signature,
read its events, and confirm a payment the client reports.

Adapters never touch the database: the service calls them outside any transaction (no lock
is held across a network call) and records what they answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

# What an event means for an order, whatever the provider calls it.
EventKind = Literal[
    "payment_succeeded", "payment_pending", "payment_failed", "refunded",
    "dispute_opened", "dispute_won", "dispute_lost", "ignored",
]


@dataclass(frozen=True, slots=True)
class OrderInfo:
    """What a provider needs to know about an order to take its payment."""

    order_id: str
    user_id: str
    description: str
    price: int
    price_currency: str
    return_url: str
    cancel_url: str
    expires_at_s: int


@dataclass(frozen=True, slots=True)
class Checkout:
    provider_order_id: str
    checkout_url: str | None
    client_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A webhook event, normalised. ``order_id`` is ours when the provider echoes it back;
    otherwise the order is found by ``provider_order_id`` or ``provider_payment_id``."""

    event_id: str
    type: str  # the provider's own name for it
    kind: EventKind
    order_id: str | None = None
    provider_order_id: str | None = None
    provider_payment_id: str | None = None
    amount: int | None = None  # price minor units, when the event carries them
    currency: str | None = None
    full: bool = True  # a refund of the whole payment
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A payment the provider confirms as completed (the verify call)."""

    provider_payment_id: str | None
    amount: int | None = None
    currency: str | None = None


def text(value: Any) -> str | None:
    """A field of a signed event that should be a string; anything else counts as absent."""
    return value if isinstance(value, str) and value else None


def amount(value: Any) -> int | None:
    """An amount from a signed event: absent stays None, a malformed one never matches."""
    if value is None:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


class ProviderError(Exception):
    """The provider could not be reached or refused the request; safe to retry."""


class SignatureError(Exception):
    """A webhook or client signature is missing or wrong."""


class Provider(Protocol):
    name: str

    async def create_checkout(self, order: OrderInfo) -> Checkout: ...

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Raise SignatureError unless ``body`` was signed by the provider."""

    def parse_event(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Read a verified body; raise ValueError if it is not an event we can read."""

    async def confirm(self, order_id: str, provider_order_id: str,
                      params: Mapping[str, Any]) -> Confirmation | None:
        """Check a client's claim that it paid; None if the provider says it is not paid.
        Raise SignatureError if the client's proof is forged."""
