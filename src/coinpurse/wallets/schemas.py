"""Request and response models of the internal service API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coinpurse.core.types import (
    Address,
    Amount,
    CurrencyCode,
    Description,
    InternalNotes,
    Kind,
    Metadata,
    ReferenceId,
    StrictModel,
    UserId,
)
from coinpurse.ledger.model import POSTINGS_MAX


class WalletChangeIn(StrictModel):
    """A credit (from the calling service to the user) or a debit (back)."""

    user_id: UserId
    currency: CurrencyCode
    amount: Amount
    description: Description
    reference_id: ReferenceId
    metadata: Metadata = Field(default_factory=dict)
    internal_notes: InternalNotes | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{
                "user_id": "123", "currency": "points", "amount": 100,
                "description": "Referral bonus", "reference_id": "ref_456", "metadata": {},
            }]
        },
    )


class PostingIn(StrictModel):
    source: Address
    destination: Address
    amount: Amount
    currency: CurrencyCode

    @model_validator(mode="after")
    def _distinct(self) -> PostingIn:
        if self.source == self.destination:
            raise ValueError("source and destination must differ")
        return self


class TransferIn(StrictModel):
    """One atomic transaction of several postings between any addresses."""

    postings: list[PostingIn] = Field(min_length=1, max_length=POSTINGS_MAX)
    kind: Kind = "transfer"
    description: Description
    reference_id: ReferenceId
    metadata: Metadata = Field(default_factory=dict)
    internal_notes: InternalNotes | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{
                "postings": [
                    {"source": "user:1", "destination": "user:2", "amount": 90,
                     "currency": "points"},
                    {"source": "user:1", "destination": "agency:7", "amount": 10,
                     "currency": "points"},
                ],
                "kind": "gift", "description": "Rose for a host", "reference_id": "gift_789",
            }]
        },
    )


BATCH_MAX = 1000


class BatchIn(StrictModel):
    """Up to 1,000 transfers in one call; each posts or is refused on its own."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"transfers": [{"postings": [{"source": "user:alice",
                                      "destination": "user:bob",
                                      "amount": 25,
                                      "currency": "points"}],
                        "description": "Trade",
                        "reference_id": "trade-1"},
                       {"postings": [{"source": "world",
                                      "destination": "user:carol",
                                      "amount": 100,
                                      "currency": "points"}],
                        "description": "Welcome bonus",
                        "reference_id": "welcome-carol"}],
         "atomic": False}
    ]})


    transfers: list[TransferIn] = Field(min_length=1, max_length=BATCH_MAX)
    atomic: bool = Field(
        default=False,
        description="All or nothing: if one transfer is refused, none is posted.",
    )


class BatchResultOut(BaseModel):
    index: int
    status: str = Field(description="`posted` or `rejected`.")
    reference_id: str
    id: str | None = Field(default=None, description="The transaction id, when posted.")
    code: str | None = Field(default=None, description="Why it was refused.")
    detail: str | None = None


class BatchOut(BaseModel):
    atomic: bool
    posted: int
    rejected: int
    results: list[BatchResultOut]


class BalanceOut(BaseModel):
    balance: int
    held: int
    available: int


class WalletsOut(BaseModel):
    user_id: str
    wallets: dict[str, BalanceOut]


class AccountOut(BaseModel):
    address: str
    balances: dict[str, BalanceOut]


class PostingOut(BaseModel):
    source: str
    destination: str
    amount: int
    currency: str


class AccountBalanceOut(BalanceOut):
    address: str
    currency: str


class TransactionOut(BaseModel):
    id: str
    kind: str
    description: str
    reference_id: str
    metadata: dict[str, Any]
    postings: list[PostingOut]
    service: str | None
    initiator: str
    internal_notes: str | None
    idempotency_key: str | None
    created_at: str
    balances: list[AccountBalanceOut] = Field(
        description="Every account the transaction touched, after it."
    )


class WalletTransactionOut(TransactionOut):
    user_id: str
    currency: str
    amount: int
    balance_after: int = Field(description="The user's balance in this currency after it.")
    wallet: BalanceOut


class EntryOut(BaseModel):
    id: str
    posting_index: int
    address: str
    currency: str
    amount: int
    balance_after: int


class TransactionAuditOut(BaseModel):
    id: str
    kind: str
    description: str
    reference_id: str
    metadata: dict[str, Any]
    postings: list[PostingOut]
    service: str | None
    initiator: str
    internal_notes: str | None
    idempotency_key: str | None
    created_at: str
    entries: list[EntryOut]


class HistoryEntryOut(BaseModel):
    id: str
    transaction_id: str
    currency: str
    amount: int = Field(description="Signed: negative when money left the wallet.")
    kind: str
    description: str
    reference_id: str
    balance_after: int
    created_at: str


class AuditHistoryEntryOut(HistoryEntryOut):
    service: str | None
    initiator: str
    internal_notes: str | None
    metadata: dict[str, Any]


class HistoryPage(BaseModel):
    data: list[HistoryEntryOut]
    next_cursor: str | None


class AuditHistoryPage(BaseModel):
    data: list[AuditHistoryEntryOut]
    next_cursor: str | None
