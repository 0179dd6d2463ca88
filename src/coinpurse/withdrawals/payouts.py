"""Payout providers: where approved withdrawals are paid out. Only ``mock`` for now.

Called after the capture has committed, never inside a database transaction. A provider
must treat the withdrawal id as an idempotency key: a retried approval sends it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Payout:
    withdrawal_id: str
    user_id: str
    currency: str
    amount: int
    destination: Mapping[str, Any]


class PayoutError(Exception):
    """The payout did not go through; the withdrawal stays approved and can be retried."""


class PayoutProvider(Protocol):
    name: str

    async def send(self, payout: Payout) -> str:
        """Pay out; return the provider's reference."""


class MockPayouts:
    """Pays everything at once, except a destination with ``"mock_fail": true``."""

    name = "mock"

    async def send(self, payout: Payout) -> str:
        if payout.destination.get("mock_fail") is True:
            raise PayoutError("the mock payout provider was asked to fail")
        return f"mock_payout_{payout.withdrawal_id}"


PAYOUT_PROVIDERS: dict[str, PayoutProvider] = {"mock": MockPayouts()}
