"""A withdrawal as the rest of the code sees it (no rows, no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coinpurse.core.clock import iso

# What counts towards the daily and monthly limits: every request not given back.
COUNTED = ("pending", "approved", "paid")


@dataclass(frozen=True, slots=True)
class Withdrawal:
    id: str
    user_id: str
    currency: str
    amount: int
    hold_id: str  # the hold that reserves the amount while an operator decides
    destination: dict[str, Any]  # opaque details for the payout provider
    # pending, cancelled, rejected, expired, approved (captured, payout not confirmed), paid
    status: str
    reason: str | None
    decided_by: str | None
    transaction_id: str | None  # the capture's
    payout_provider: str | None
    payout_reference: str | None
    payout_error: str | None
    created_at: datetime
    updated_at: datetime

    def event_data(self, **changed: Any) -> dict[str, Any]:
        """The data of its ``withdrawal.*`` events (``changed``: what the event's commit
        sets); the destination's details stay out of the log."""
        return {"withdrawal_id": self.id, "user_id": self.user_id, "currency": self.currency,
                "amount": self.amount, "hold_id": self.hold_id, "status": self.status,
                "reason": self.reason, "transaction_id": self.transaction_id,
                "payout_reference": self.payout_reference, "created_at": iso(self.created_at),
                **changed}


@dataclass(frozen=True, slots=True)
class PeriodUse:
    limit: int | None  # None: no limit at this tier
    used: int  # pending, approved and paid withdrawals in the period


@dataclass(frozen=True, slots=True)
class CurrencyLimits:
    currency: str
    min_amount: int
    max_amount: int | None
    daily: PeriodUse
    monthly: PeriodUse


@dataclass(frozen=True, slots=True)
class WithdrawalLimits:
    """What a user may withdraw now: what the request itself checks, read in advance."""

    tier: int
    allowed: bool
    required_tier: int | None
    debt: int
    currencies: list[CurrencyLimits]
