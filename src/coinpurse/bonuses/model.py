"""Promotions and bonuses as the rest of the code sees them (no rows, no HTTP)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from coinpurse.core.types import AMOUNT_MAX

KINDS = ("deposit_match", "signup", "referral", "manual")
STATUSES = ("active", "completed", "forfeited", "expired")
CLOSED = ("completed", "forfeited", "expired")
BP = 10_000  # basis points: 10000 = 100%

PromotionKind = Literal["deposit_match", "signup", "referral", "manual"]
BonusStatus = Literal["active", "completed", "forfeited", "expired"]


@dataclass(frozen=True, slots=True)
class Terms:
    """How a bonus is played through: copied from its promotion when it is granted, so that
    editing the promotion later changes only the bonuses granted after the edit."""

    contributions: Mapping[str, int]  # basis points per activity category
    default_contribution_bp: int  # for a category not listed
    max_conversion: int | None  # at most this converts to cash; None: all of it

    def weight(self, category: str) -> int:
        return self.contributions.get(category, self.default_contribution_bp)


@dataclass(frozen=True, slots=True)
class Promotion:
    id: str
    code: str
    kind: str
    currency: str
    description: str
    percent_bp: int | None
    max_bonus: int | None
    amount: int | None
    min_deposit: int | None
    wagering_multiplier: int
    terms: Terms
    expires_in_days: int
    starts_at: datetime | None
    ends_at: datetime | None
    active: bool
    automatic: bool
    claimable: bool
    per_user_limit: int | None
    budget: int | None
    granted_total: int
    granted_count: int
    created_at: datetime
    updated_at: datetime

    def live(self, at: datetime) -> bool:
        """Active, and inside its window."""
        return (self.active and (self.starts_at is None or self.starts_at <= at)
                and (self.ends_at is None or at < self.ends_at))

    def qualifies(self, deposit: int) -> bool:
        return self.min_deposit is None or deposit >= self.min_deposit

    def match(self, deposit: int) -> int:
        """A deposit match's bonus for ``deposit``: its percent, at most ``max_bonus``; 0
        below ``min_deposit``."""
        assert self.kind == "deposit_match" and self.percent_bp is not None
        if not self.qualifies(deposit):
            return 0
        bonus = deposit * self.percent_bp // BP
        if self.max_bonus is not None:
            bonus = min(bonus, self.max_bonus)
        return min(bonus, AMOUNT_MAX)

    def requirement(self, granted: int) -> int:
        """What must be wagered before a bonus of ``granted`` converts."""
        return min(granted * self.wagering_multiplier, AMOUNT_MAX)


@dataclass(slots=True)
class Bonus:
    """A grant and how far it has been played through. Changed in memory by a ledger job
    (under the user's bonus wallet lock), written with the job's money movement."""

    id: str
    user_id: str
    promotion_id: str
    promotion_code: str
    kind: str
    currency: str
    source: str
    description: str
    granted: int
    remaining: int
    wagering_required: int
    wagered: int
    terms: Terms
    status: str
    converted: int
    forfeited: int
    transaction_id: str  # the grant's
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def left_to_wager(self) -> int:
        return max(self.wagering_required - self.wagered, 0)

    @property
    def percent(self) -> float:
        """How far the wagering is, 0 to 100, two decimals."""
        if self.wagering_required == 0:
            return 100.0
        return round(min(self.wagered, self.wagering_required) * 100 / self.wagering_required,
                     2)

    def copy(self) -> Bonus:
        return dataclasses.replace(self)


@dataclass(frozen=True, slots=True)
class Referral:
    referee_id: str
    referrer_id: str
    service: str
    created_at: datetime
    rewarded_at: datetime | None
    order_id: str | None  # the qualifying top-up, once rewarded


@dataclass(frozen=True, slots=True)
class BonusFilter:
    user_id: str | None = None
    status: str | None = None
    currency: str | None = None
    promotion_id: str | None = None


@dataclass(frozen=True, slots=True)
class PromotionFilter:
    kind: str | None = None
    currency: str | None = None
    active: bool | None = None
