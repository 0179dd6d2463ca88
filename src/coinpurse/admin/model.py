"""The admin domain's value types: adjustments, and the reports operators read.

The repository maps rows to them, the service returns them, the schemas render them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from coinpurse.ledger.model import Posting


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A credit or debit an admin asked for; ``status`` pending, approving, applied,
    rejected or failed."""

    id: str
    user_id: str
    currency: str
    amount: int
    direction: str
    reason: str
    status: str
    requested_by: str
    created_at: datetime
    decided_by: str | None = None
    decision_note: str | None = None
    transaction_id: str | None = None
    decided_at: datetime | None = None

    def same_request(self, user_id: str, currency: str, amount: int, direction: str,
                     reason: str) -> bool:
        return (self.user_id, self.currency, self.amount, self.direction, self.reason) == \
            (user_id, currency, amount, direction, reason)


@dataclass(frozen=True, slots=True)
class PostedTransaction:
    """A transaction as the ledger stored it: what a reversal needs to undo it."""

    id: str
    kind: str
    description: str
    service: str | None
    postings: tuple[Posting, ...]


# --- reports --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TxFilter:
    user_id: str | None = None
    address: str | None = None
    currency: str | None = None
    kind: str | None = None
    service: str | None = None
    reference_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    amount_min: int | None = None
    amount_max: int | None = None


@dataclass(frozen=True, slots=True)
class FoundTransaction:
    id: str
    kind: str
    description: str
    reference_id: str
    service: str | None
    initiator: str
    internal_notes: str | None
    metadata: Mapping[str, Any]
    postings: tuple[Posting, ...]
    amounts: Mapping[str, int]  # per currency: the sum of its positive entries
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KindTotal:
    kind: str
    currency: str
    count: int
    total: int


@dataclass(frozen=True, slots=True)
class TransactionSearch:
    data: list[FoundTransaction]
    summary: list[KindTotal]  # for everything the filter matches, not only this page
    next_id: str | None


@dataclass(frozen=True, slots=True)
class LedgerLine:
    id: int
    transaction_id: str
    address: str
    currency: str
    amount: int
    balance_after: int
    kind: str
    description: str
    reference_id: str
    service: str | None
    initiator: str
    internal_notes: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerTotal:
    kind: str
    currency: str
    in_: int
    out: int
    entries: int


@dataclass(frozen=True, slots=True)
class UserLedger:
    user_id: str
    data: list[LedgerLine]
    totals: list[LedgerTotal]
    next_id: int | None


@dataclass(frozen=True, slots=True)
class ServiceStats:
    issued: int
    collected: int
    balance: int


@dataclass(frozen=True, slots=True)
class CurrencyStats:
    in_user_wallets: int
    held: int
    services: dict[str, ServiceStats]
    volume_24h: dict[str, int]
    volume_7d: dict[str, int]
    count_24h: dict[str, int]
    count_7d: dict[str, int]


@dataclass(frozen=True, slots=True)
class Stats:
    generated_at: datetime
    currencies: dict[str, CurrencyStats]
    users_with_wallet: int


@dataclass(frozen=True, slots=True)
class GiftFilter:
    from_user_id: str | None = None
    to_user_id: str | None = None
    agency_id: str | None = None
    gift_type: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class SentGift:
    id: str
    transaction_id: str
    from_user_id: str
    to_user_id: str
    gift_type: str | None
    currency: str
    amount: int
    receiver_amount: int
    agency_id: str | None
    agency_commission: int
    platform_fee: int
    message: str | None
    context_id: str | None
    created_at: datetime


GiftGrouping = Literal["gift_type", "to_user_id", "agency_id"]


@dataclass(frozen=True, slots=True)
class GiftTotal:
    """Gifts of one group (``by`` names what they share: ``key``) in one currency."""

    by: GiftGrouping
    key: str | None
    currency: str
    count: int
    amount: int
    receiver_amount: int
    agency_commission: int
    platform_fee: int


@dataclass(frozen=True, slots=True)
class GiftReport:
    data: list[SentGift]
    next_id: str | None
    totals_by_gift_type: list[GiftTotal] = field(default_factory=list)
    totals_by_receiver: list[GiftTotal] = field(default_factory=list)
    totals_by_agency: list[GiftTotal] = field(default_factory=list)


# --- the console's dashboard and exports ----------------------------------------------------

@dataclass(frozen=True, slots=True)
class DayVolume:
    """Transactions of one kind in one currency on one UTC day (YYYY-MM-DD)."""

    date: str
    currency: str
    kind: str
    count: int
    amount: int


@dataclass(frozen=True, slots=True)
class DayFees:
    date: str
    currency: str
    amount: int


@dataclass(frozen=True, slots=True)
class DailyStats:
    days: list[str]  # every UTC day of the range, oldest first
    volume: list[DayVolume]  # only days and kinds with activity
    fees: list[DayFees]
    fee_address: str


@dataclass(frozen=True, slots=True)
class PendingCounts:
    """What waits for an operator's decision."""

    withdrawals: int
    kyc_submissions: int
    adjustments: int


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One transaction in one currency, as a line of the CSV export."""

    transaction_id: str
    created_at: datetime
    kind: str
    currency: str
    amount: int
    description: str
    reference_id: str
    service: str | None
    initiator: str
