"""The reconciliation domain's values: discrepancies, seals, runs (no rows, no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KINDS = ("ledger", "chain", "provider")
STATUSES = ("running", "passed", "failed", "error")
STATEMENT_PROVIDERS = ("stripe", "razorpay")

# Every check a run may report, with what it means. The README's table is this one.
CHECKS: dict[str, str] = {
    # ledger
    "currency_sum_not_zero": "the balances of a currency do not sum to zero",
    "negative_user_balance": "a user's wallet is below zero or below what it holds",
    "balance_not_sum_of_entries": "an account's balance differs from the sum of its entries",
    "last_balance_after_mismatch": "an account's balance differs from its newest entry's "
                                   "balance_after",
    "balance_after_jump": "an entry's balance_after is not the previous one plus its amount",
    "held_not_sum_of_holds": "an account's held amount differs from the sum of its open holds",
    "transaction_entries_mismatch": "a transaction's entries are not exactly its postings "
                                    "(an entry missing, added, or with another amount or "
                                    "account)",
    "unbalanced_transaction": "a transaction's entries do not sum to zero in a currency",
    "entry_count_mismatch": "the entries in the tables are not as many as the seals counted",
    "archived_totals_mismatch": "the per-account totals of archived months account for "
                                "another number of entries than those months' seals",
    # payments and withdrawals
    "paid_order_without_credit": "a paid top-up order has no credit transaction, or not "
                                 "the one it names",
    "order_credit_mismatch": "an order's credit moves another amount than the order's",
    "order_credited_twice": "an order has more than one credit transaction",
    "credit_without_order": "a credit from a provider names no order that records it",
    "credit_on_unpaid_order": "an order that is not paid has a credit",
    "reversal_missing": "a refunded or charged-back order's reversal transaction is missing "
                        "or moves another amount",
    "withdrawal_without_capture": "an approved or paid withdrawal has no capture of its "
                                  "amount, or its hold is not captured",
    # the shop
    "shop_order_without_purchase": "a shop order's purchase transaction is missing or is "
                                   "not a purchase of that order",
    "shop_order_amount_mismatch": "a shop order's purchase takes another amount from the "
                                  "buyer, or leaves the merchant another net amount (price "
                                  "less the fee), than the order says",
    "shop_refund_mismatch": "a shop refund's transaction is missing or gives the buyer "
                            "another amount, or the order's refunded totals or status differ "
                            "from its refunds",
    "purchase_without_order": "a shop purchase or refund transaction that no order or "
                              "refund records",
    # bonuses
    "bonus_wallet_mismatch": "a user's bonus wallet holds another amount than what remains "
                             "of their active bonuses in that currency",
    # the hash chain
    "seal_missing": "a seal of the chain was deleted (a gap in the sequence)",
    "seal_out_of_order": "a seal does not follow the one before it (seals reordered, "
                         "inserted or edited)",
    "transaction_deleted": "a sealed transaction is no longer in the database",
    "entry_deleted": "a sealed transaction has lost an entry",
    "entry_inserted": "a sealed transaction has gained an entry",
    "entry_amount_changed": "an entry's amount differs from its posting's",
    "entry_account_changed": "an entry is on another account than its posting's",
    "entries_reordered": "a transaction's entries are no longer in the order of its postings",
    "transaction_changed": "a sealed transaction or one of its entries differs from what "
                           "was sealed",
    "transaction_unsealed": "a transaction has no seal long after it was created: it was "
                            "not written by the ledger (no transaction.posted event)",
    "head_mismatch": "the chain does not reach the head hash that was exported",
    # provider statements
    "provider_payment_not_credited": "the provider reports a successful payment whose "
                                     "order is missing or not paid here",
    "order_not_paid_at_provider": "an order paid here has no successful payment at the "
                                  "provider",
    "provider_amount_mismatch": "the provider's amount differs from the order's price",
}


@dataclass(frozen=True, slots=True)
class Discrepancy:
    check: str
    subject_type: str  # currency, account, entry, transaction, seal, payment_order, ...
    subject: str
    detail: str
    expected: Any = None
    actual: Any = None

    def __post_init__(self) -> None:
        assert self.check in CHECKS, self.check


@dataclass(frozen=True, slots=True)
class Seal:
    sequence: int
    transaction_id: str
    entry_count: int
    hash: str
    previous_hash: str
    event_id: int | None
    sealed_at: datetime
    # The transaction's created_at (its month's partition): once that month is archived,
    # the seal still links the chain but its transaction is no longer there to hash.
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    kind: str
    mode: str
    status: str
    trigger: str
    scheduled_for: str | None
    provider: str | None
    scope: dict[str, Any]
    counts: dict[str, int]
    discrepancy_count: int
    error: str | None
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunDetail:
    run: Run
    discrepancies: list[Discrepancy]


@dataclass(frozen=True, slots=True)
class AccountState:
    """An account as a run reads it, with its mark from the last clean run (if any)."""

    id: int
    address: str
    currency: str
    balance: int
    held: int
    version: int
    mark_balance: int | None = None
    mark_held: int | None = None
    mark_version: int | None = None
    mark_last_entry_id: int | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    account_id: int
    balance: int
    held: int
    version: int
    last_entry_id: int


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """The part of an entry the balance checks read."""

    account_id: int
    id: int
    amount: int
    balance_after: int


@dataclass(frozen=True, slots=True)
class ShopOrderRow:
    id: str
    buyer_id: str
    merchant_id: str
    currency: str
    amount: int
    fee: int
    refunded_amount: int
    refunded_fee: int
    status: str
    transaction_id: str


@dataclass(frozen=True, slots=True)
class ShopRefundRow:
    id: str
    order_id: str
    amount: int
    fee: int
    transaction_id: str


@dataclass(frozen=True, slots=True)
class OrderRow:
    id: str
    user_id: str
    provider: str
    provider_order_id: str | None
    status: str
    currency: str
    amount: int
    bonus: int
    price: int
    price_currency: str
    credit_transaction_id: str | None
    reversal_transaction_id: str | None
    reversed_amount: int
    paid_at: datetime | None


@dataclass(frozen=True, slots=True)
class WithdrawalRow:
    id: str
    user_id: str
    currency: str
    amount: int
    status: str
    transaction_id: str | None
    hold_id: str
    hold_status: str | None
    hold_transaction_id: str | None


@dataclass(frozen=True, slots=True)
class LinkedTx:
    """A transaction as the payments and withdrawals checks read it."""

    id: str
    kind: str
    initiator: str
    reference_id: str
    postings: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ProviderPayment:
    """A successful payment in a provider's statement."""

    provider: str
    payment_id: str
    provider_order_id: str | None
    order_id: str | None  # ours, when the provider echoes it back
    amount: int
    currency: str
    created_at: datetime


@dataclass(slots=True)
class Counts:
    values: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        self.values[name] = self.values.get(name, 0) + n
