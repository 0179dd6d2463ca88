"""The wallet API's requests and answers: each shape is defined once, here, and serves the
validation, the OpenAPI document and the answer itself (``of`` builds it from the ledger's
types; routes and renderers serialize it once with ``model_dump_json``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

from coinpurse.bonuses.schemas import CATEGORY_RE, ConversionOut
from coinpurse.core.clock import iso
from coinpurse.core.pages import Page
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
from coinpurse.ledger.model import POSTINGS_MAX, Balance, Outcome, Posting, Rejection, Transaction
from coinpurse.ledger.queries import HistoryEntry, TransactionRecord
from coinpurse.ledger.settings import Currency


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


class WalletDebitIn(WalletChangeIn):
    """A debit; it may spend bonus money (see the README's Bonuses) and count as wagering."""

    use_bonus: StrictBool = Field(
        default=True, description="false: only the cash wallet pays, never bonus money.")
    category: Annotated[str, StringConstraints(pattern=CATEGORY_RE)] | None = Field(
        default=None, description="The activity's category (slots, table, ...): its amount "
        "times the category's weight counts toward the user's active bonuses.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{
                "user_id": "123", "currency": "points", "amount": 100,
                "description": "Spin", "reference_id": "spin_456", "category": "slots",
            }]
        },
    )

    def hashed(self) -> dict[str, Any]:
        """What the idempotency hash covers: the new fields only when sent, so a key
        stored before they existed still matches its retry."""
        data = self.model_dump(mode="json")
        if self.use_bonus:
            data.pop("use_bonus")
        if self.category is None:
            data.pop("category")
        return data


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


# Answers. Each ``of`` builds its model from the ledger's types in one validation call from
# plain values (building the nested models one by one costs about twice as much on these hot
# routes); the route or the ledger's renderer then serializes it once.


class BatchResultOut(BaseModel):
    """A posted transfer has an `id`; a refused one a `code` and a `detail` instead."""

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

    @classmethod
    def of(cls, body: BatchIn, outcomes: Sequence[Outcome]) -> BatchOut:
        results: list[dict[str, Any]] = []
        for i, (transfer, outcome) in enumerate(zip(body.transfers, outcomes, strict=True)):
            if isinstance(outcome, Rejection):
                results.append({"index": i, "status": "rejected",
                                "reference_id": transfer.reference_id, "code": outcome.code,
                                "detail": outcome.detail})
            else:
                assert isinstance(outcome, Transaction)
                results.append({"index": i, "status": "posted",
                                "reference_id": transfer.reference_id, "id": outcome.id})
        posted = sum(r["status"] == "posted" for r in results)
        return cls.model_validate({"atomic": body.atomic, "posted": posted,
                                   "rejected": len(results) - posted, "results": results})

    def answer(self) -> bytes:
        """Slim on purpose (a full view of 1,000 transactions would be megabytes): the
        fields a result does not have are left out, not null."""
        return self.model_dump_json(exclude_none=True).encode()


class BalanceOut(BaseModel):
    balance: int
    held: int
    available: int


class WalletBalanceOut(BalanceOut):
    bonus: int = Field(description="The bonus wallet: bonus money, spent after (or before) "
                       "cash and converted once wagered; not in `balance`.")


class WalletsOut(BaseModel):
    user_id: str
    wallets: dict[str, WalletBalanceOut]

    @classmethod
    def of(cls, user_id: str, found: Mapping[str, Balance],
           bonus: Mapping[str, int]) -> WalletsOut:
        return cls.model_validate(
            {"user_id": user_id, "wallets": {c: {**b.as_dict(), "bonus": bonus.get(c, 0)}
                                             for c, b in found.items()}})


class CurrencyOut(BaseModel):
    code: str
    scale: int = Field(description="Digits after the point: amounts are in 10^-scale units.")
    giftable: bool = Field(description="Whether gifts may be paid in it.")
    sellable: bool = Field(description="Whether shop products may be priced in it.")


class CurrencyList(BaseModel):
    data: list[CurrencyOut]

    @classmethod
    def of(cls, found: Iterable[Currency], *, giftable: frozenset[str],
           sellable: frozenset[str]) -> CurrencyList:
        return cls.model_validate({"data": [
            {"code": c.code, "scale": c.scale, "giftable": c.code in giftable,
             "sellable": c.code in sellable} for c in found]})


class AccountOut(BaseModel):
    address: str
    balances: dict[str, BalanceOut]

    @classmethod
    def of(cls, address: str, found: Mapping[str, Balance]) -> AccountOut:
        return cls.model_validate(
            {"address": address, "balances": {c: b.as_dict() for c, b in found.items()}})


class PostingOut(BaseModel):
    source: str
    destination: str
    amount: int
    currency: str


def _postings(postings: Iterable[Posting]) -> list[dict[str, Any]]:
    return [{"source": p.source, "destination": p.destination, "amount": p.amount,
             "currency": p.currency} for p in postings]


class AccountBalanceOut(BaseModel):
    address: str
    currency: str
    balance: int
    held: int
    available: int


def _transaction_fields(tx: Transaction) -> dict[str, Any]:
    """The fields every answer about a posted transaction shares."""
    spec = tx.spec
    return {
        "id": tx.id, "kind": spec.kind, "description": spec.description,
        "reference_id": spec.reference_id, "metadata": spec.metadata,
        "postings": _postings(spec.postings), "service": spec.service,
        "initiator": spec.initiator, "internal_notes": spec.internal_notes,
        "idempotency_key": tx.idempotency_key, "created_at": iso(tx.created_at),
        "balances": [{"address": a, "currency": c, **b.as_dict()}
                     for (a, c), b in sorted(tx.balances_after.items())],
    }


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

    @classmethod
    def of(cls, tx: Transaction) -> TransactionOut:
        return cls.model_validate(_transaction_fields(tx))


class WalletTransactionOut(TransactionOut):
    user_id: str
    currency: str
    amount: int
    balance_after: int = Field(description="The user's balance in this currency after it.")
    wallet: BalanceOut

    @classmethod
    def of_change(cls, tx: Transaction, user_id: str, currency: str) -> WalletTransactionOut:
        """A credit or a debit: the transaction plus the user's wallet after it."""
        wallet = tx.balances_after[(f"user:{user_id}", currency)]
        return cls.model_validate({
            **_transaction_fields(tx), "user_id": user_id, "currency": currency,
            "amount": tx.spec.postings[0].amount, "balance_after": wallet.balance,
            "wallet": wallet.as_dict(),
        })


class WalletDebitOut(WalletTransactionOut):
    """A debit: how much came from the cash wallet and how much from bonus money."""

    from_cash: int
    from_bonus: int
    bonus_balance_after: int = Field(description="The user's bonus wallet after it.")
    bonus_conversions: list[ConversionOut] = Field(
        description="Bonuses whose wagering this debit completed: converted in the same "
        "commit (`wallet` and `balance_after` include it).")

    @classmethod
    def of_debit(cls, tx: Transaction, user_id: str, currency: str, amount: int, *,
                 wallet: Balance, from_cash: int, from_bonus: int, bonus_after: int,
                 conversions: Sequence[Mapping[str, Any]] = ()) -> WalletDebitOut:
        return cls.model_validate({
            **_transaction_fields(tx), "user_id": user_id, "currency": currency,
            "amount": amount, "balance_after": wallet.balance, "wallet": wallet.as_dict(),
            "from_cash": from_cash, "from_bonus": from_bonus,
            "bonus_balance_after": bonus_after, "bonus_conversions": list(conversions),
        })


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

    @classmethod
    def of(cls, t: TransactionRecord) -> TransactionAuditOut:
        return cls.model_validate({
            "id": t.id, "kind": t.kind, "description": t.description,
            "reference_id": t.reference_id, "metadata": t.metadata,
            "postings": _postings(t.postings), "service": t.service,
            "initiator": t.initiator, "internal_notes": t.internal_notes,
            "idempotency_key": t.idempotency_key, "created_at": iso(t.created_at),
            "entries": [{**e._asdict(), "id": str(e.id)} for e in t.entries],
        })


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
    """A history line as auditors see it: with what users never see (the service and
    initiator of its transaction, the operators' notes, the metadata)."""

    service: str | None
    initiator: str
    internal_notes: str | None
    metadata: dict[str, Any]


def _history_fields(e: HistoryEntry) -> dict[str, Any]:
    return {
        "id": str(e.id), "transaction_id": e.transaction_id, "currency": e.currency,
        "amount": e.amount, "kind": e.kind, "description": e.description,
        "reference_id": e.reference_id, "balance_after": e.balance_after,
        "created_at": iso(e.created_at),
    }


def _audit_history_fields(e: HistoryEntry) -> dict[str, Any]:
    return {**_history_fields(e), "service": e.service, "initiator": e.initiator,
            "internal_notes": e.internal_notes, "metadata": e.metadata}


class HistoryPage(BaseModel):
    data: list[HistoryEntryOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[HistoryEntry]) -> HistoryPage:
        return cls.model_validate({"data": [_history_fields(e) for e in page.items],
                                   "next_cursor": page.next_cursor})


class AuditHistoryPage(BaseModel):
    data: list[AuditHistoryEntryOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[HistoryEntry]) -> AuditHistoryPage:
        return cls.model_validate({"data": [_audit_history_fields(e) for e in page.items],
                                   "next_cursor": page.next_cursor})
