"""Typed answers (and the few structured request parts) of Coinpurse's APIs.

Amounts are ``int`` in minor units with their ``currency`` beside them, never floats.
Fields a newer server adds are kept (``model_extra``) rather than refused, so an older client
keeps working against a newer Coinpurse.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


# Wallets and accounts


class Balance(Model):
    balance: int
    held: int
    available: int = Field(description="balance - held: what can be spent now.")


class WalletBalance(Balance):
    bonus: int = Field(description="The bonus wallet: bonus money, not in balance.")


class Wallets(Model):
    user_id: str
    wallets: dict[str, WalletBalance] = Field(description="Per currency code.")


class Account(Model):
    address: str
    balances: dict[str, Balance]


class AccountBalance(Balance):
    address: str
    currency: str


# Transactions


class Posting(Model):
    """One movement inside a transaction; also what ``transfer()`` takes."""

    source: str
    destination: str
    amount: int
    currency: str


class Transaction(Model):
    id: str
    kind: str
    description: str
    reference_id: str
    metadata: dict[str, Any]
    postings: list[Posting]
    service: str | None
    initiator: str
    internal_notes: str | None
    idempotency_key: str | None
    created_at: datetime
    balances: list[AccountBalance] = Field(description="Every touched account, after it.")


class WalletTransaction(Transaction):
    """A credit or a debit: the transaction and the user's wallet after it."""

    user_id: str
    currency: str
    amount: int
    balance_after: int
    wallet: Balance


class BonusConversion(Model):
    bonus_id: str
    converted: int = Field(description="Moved from the bonus wallet to the cash wallet.")
    forfeited: int = Field(description="Above the promotion's max_conversion.")
    transaction_id: str | None


class WalletDebit(WalletTransaction):
    """A debit: how much the cash wallet and the bonus wallet paid, and any bonus whose
    wagering it completed (converted in the same commit)."""

    from_cash: int
    from_bonus: int
    bonus_balance_after: int
    bonus_conversions: list[BonusConversion]


class Entry(Model):
    id: str
    posting_index: int
    address: str
    currency: str
    amount: int
    balance_after: int


class TransactionAudit(Model):
    """One transaction as the audit read shows it: postings and entries, no balances."""

    id: str
    kind: str
    description: str
    reference_id: str
    metadata: dict[str, Any]
    postings: list[Posting]
    service: str | None
    initiator: str
    internal_notes: str | None
    idempotency_key: str | None
    created_at: datetime
    entries: list[Entry]


class HistoryEntry(Model):
    """A line of a user's history; ``amount`` is negative when money left the wallet."""

    id: str
    transaction_id: str
    currency: str
    amount: int
    kind: str
    description: str
    reference_id: str
    balance_after: int
    created_at: datetime


class AuditHistoryEntry(HistoryEntry):
    service: str | None
    initiator: str
    internal_notes: str | None
    metadata: dict[str, Any]


class Page(Model, Generic[T]):
    """One page of a list, newest first; pass ``next_cursor`` back for the next one."""

    data: list[T]
    next_cursor: str | None


class TransferRequest(Model):
    """One transfer of a batch (``transfer_batch``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    postings: list[Posting]
    description: str
    reference_id: str
    kind: str = "transfer"
    metadata: dict[str, Any] = Field(default_factory=dict)
    internal_notes: str | None = None


class BatchResult(Model):
    index: int
    status: str = Field(description="posted or rejected")
    reference_id: str
    id: str | None = None
    code: str | None = Field(default=None, description="Why it was refused.")
    detail: str | None = None


class BatchOutcome(Model):
    atomic: bool
    posted: int
    rejected: int
    results: list[BatchResult]


# Holds and agencies


class Hold(Model):
    id: str
    status: str = Field(description="held, captured, voided or expired")
    user_id: str
    currency: str
    amount: int
    captured_amount: int
    released_amount: int
    destination: str
    kind: str
    description: str
    reference_id: str
    metadata: dict[str, Any]
    service: str
    transaction_id: str | None
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    wallet: Balance | None = None


class Agency(Model):
    user_id: str
    agency_id: str | None


# Gifts


class GiftType(Model):
    gift_type: str
    price: int
    currency: str


class Gift(Model):
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


class SentGift(Gift):
    giver_wallet: Balance


# Top-ups


class Price(Model):
    amount: int = Field(description="Minor units of the price currency (999 = 9.99).")
    currency: str


class Package(Model):
    id: str
    currency: str
    amount: int
    bonus: int
    total: int
    price: Price


class Rate(Model):
    currency: str
    per: int
    price: Price


class Packages(Model):
    data: list[Package]
    rates: list[Rate]
    providers: list[str]


class TopupOrder(Model):
    id: str
    status: str = Field(description="created, pending, succeeded, failed, refunded, disputed")
    provider: str
    package_id: str | None
    currency: str
    amount: int
    bonus: int
    price: Price
    checkout_url: str | None
    client_params: dict[str, Any] | None
    transaction_id: str | None
    reversal_transaction_id: str | None
    reversed_amount: int
    debt_amount: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    paid_at: datetime | None


# Withdrawals


class Withdrawal(Model):
    id: str
    status: str = Field(description="pending, cancelled, rejected, expired, approved, paid")
    currency: str
    amount: int
    destination: dict[str, Any]
    reason: str | None
    transaction_id: str | None
    payout_reference: str | None
    payout_error: str | None
    created_at: datetime
    updated_at: datetime
    wallet: Balance | None = None


# KYC


class KycTier(Model):
    tier: int
    requires: list[str]
    withdrawals: bool
    limits: dict[str, dict[str, int | None]]


class KycSubmission(Model):
    id: str
    tier: int
    status: str = Field(description="pending, approved, rejected")
    reason: str | None
    created_at: datetime | None
    reviewed_at: datetime | None


class KycStatus(KycTier):
    user_id: str
    next_tier: KycTier | None
    submission: KycSubmission | None


# The caller


class Me(Model):
    id: str
    role: str
    mfa: bool
    email: str | None = None
    totp_enabled: bool | None = None
    created_at: datetime | None = None


__all__ = [
    "Account",
    "AccountBalance",
    "Agency",
    "AuditHistoryEntry",
    "Balance",
    "BatchOutcome",
    "BatchResult",
    "BonusConversion",
    "Entry",
    "Gift",
    "GiftType",
    "HistoryEntry",
    "Hold",
    "KycStatus",
    "KycSubmission",
    "KycTier",
    "Me",
    "Package",
    "Packages",
    "Page",
    "Posting",
    "Price",
    "Rate",
    "SentGift",
    "TopupOrder",
    "Transaction",
    "TransactionAudit",
    "TransferRequest",
    "WalletBalance",
    "WalletDebit",
    "WalletTransaction",
    "Wallets",
    "Withdrawal",
]
