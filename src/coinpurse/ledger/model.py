"""Value types of the ledger kernel: no database, no HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coinpurse.core.errors import CoinpurseError
from coinpurse.core.types import AMOUNT_MAX as AMOUNT_MAX  # the BIGINT bound, re-exported

BALANCE_MIN = -(2**63)
POSTINGS_MAX = 64  # per transaction

AccountKey = tuple[str, str]  # (address, currency)


@dataclass(frozen=True, slots=True)
class Posting:
    source: str
    destination: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class TransactionSpec:
    """What a caller asks the ledger to post; validated before it gets here."""

    kind: str
    postings: tuple[Posting, ...]
    description: str
    reference_id: str
    initiator: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    service: str | None = None
    internal_notes: str | None = None

    def account_keys(self) -> set[AccountKey]:
        keys: set[AccountKey] = set()
        for p in self.postings:
            keys.add((p.source, p.currency))
            keys.add((p.destination, p.currency))
        return keys


@dataclass(slots=True)
class AccountState:
    """A locked balance row, changed in memory while a batch is applied."""

    id: int
    address: str
    currency: str
    balance: int
    held: int
    overdraft: bool
    # Counts the changes of this account: events carry it so that a receiver can put
    # deliveries of one account back in order (event ids follow transaction ids, and a
    # transaction may commit after one with a higher id that changed the account first).
    version: int = 0
    dirty: bool = False

    @property
    def key(self) -> AccountKey:
        return (self.address, self.currency)

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass(frozen=True, slots=True)
class Balance:
    balance: int
    held: int
    version: int = 0  # the account's version after this change (0: read, not changed)

    @property
    def available(self) -> int:
        return self.balance - self.held

    def as_dict(self) -> dict[str, int]:
        return {"balance": self.balance, "held": self.held, "available": self.available}


def touch(state: AccountState) -> Balance:
    """Mark an account changed by one operation; its balance and version after it."""
    state.version += 1
    state.dirty = True
    return Balance(state.balance, state.held, state.version)


@dataclass(frozen=True, slots=True)
class EntryRecord:
    account_id: int
    address: str
    currency: str
    posting_index: int
    amount: int  # signed: negative leaves the account
    balance_after: int


@dataclass(frozen=True, slots=True)
class Transaction:
    """A posted transaction; immutable once committed."""

    id: str
    spec: TransactionSpec
    created_at: datetime
    idempotency_key: str | None
    entries: tuple[EntryRecord, ...]
    balances_after: Mapping[AccountKey, Balance]


@dataclass(frozen=True, slots=True)
class PlaceHold:
    """Reserve ``amount`` of an account's available balance until captured or released."""

    hold_id: str
    address: str
    currency: str
    amount: int
    destination: str
    description: str
    reference_id: str
    service: str
    expires_at: datetime
    kind: str = "capture"
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaptureHold:
    """Move ``amount`` (default: all) of a hold to its destination; release the rest."""

    hold_id: str
    service: str | None  # None: any service (operators); else only the hold's own
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class ReleaseHold:
    """Release a hold without moving money: ``voided`` by a caller, or ``expired``."""

    hold_id: str
    service: str | None
    status: str = "voided"


Operation = TransactionSpec | PlaceHold | CaptureHold | ReleaseHold


@dataclass(slots=True)
class HoldState:
    """A locked hold row, changed in memory while a batch is applied."""

    id: str
    address: str
    currency: str
    amount: int
    destination: str
    status: str  # held, captured, voided, expired
    service: str
    kind: str
    description: str
    reference_id: str
    metadata: Mapping[str, Any]
    created_at: datetime
    expires_at: datetime
    captured_amount: int = 0
    transaction_id: str | None = None
    closed_at: datetime | None = None
    is_new: bool = False
    dirty: bool = False


@dataclass(frozen=True, slots=True)
class HoldOutcome:
    """A hold after an operation on it, with its account's balance and any capture."""

    hold: HoldState
    balance: Balance
    transaction: Transaction | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one transaction of a batch was refused; the others are unaffected.

    The engine's own refusals carry only a code; a domain rule checked inside the batch (a
    KYC limit, a debt) carries its ``error``, which is what the caller is answered with."""

    code: str
    detail: str
    posting_index: int | None = None
    error: CoinpurseError | None = None

    @classmethod
    def of(cls, error: CoinpurseError) -> Rejection:
        return cls(error.code, error.detail, error=error)


Outcome = Transaction | HoldOutcome | Rejection
