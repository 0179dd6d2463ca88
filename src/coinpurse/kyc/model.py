"""KYC submissions and a user's status, as the rest of the code sees them (no rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coinpurse.kyc.tiers import Tier


@dataclass(frozen=True, slots=True)
class KycSubmission:
    id: str
    user_id: str
    tier: int
    data: dict[str, Any]  # references to documents kept elsewhere, never the images
    status: str  # pending, approved, rejected
    reason: str | None
    reviewed_by: str | None
    created_at: datetime
    reviewed_at: datetime | None


@dataclass(frozen=True, slots=True)
class KycStatus:
    """A user's tier, the tier after it, and their latest submission."""

    user_id: str
    tier: Tier
    next_tier: Tier | None
    submission: KycSubmission | None
    currencies: tuple[str, ...]  # the limits are shown for each
