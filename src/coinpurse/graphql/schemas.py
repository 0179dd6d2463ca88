"""The GraphQL types: the REST answers' shapes, field for field (camelCase on the wire).

Each object type is built from the JSON the REST schema renders (``build``), so a field
means exactly what it means in the OpenAPI document, and a mutation's answer can be the
ledger's stored answer (the bytes an idempotent replay sends) read back.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from enum import Enum
from typing import Any, Generic, NewType, TypeVar

import strawberry
from strawberry.scalars import JSON

T = TypeVar("T")
Built = TypeVar("Built")
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def _long(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or not _LONG_MIN <= value <= _LONG_MAX:
        raise ValueError("a Long is an integer from -2^63 to 2^63-1")
    return value


# Amounts are BIGINT (up to 2^63-1), past GraphQL's 32-bit Int: a JSON number, as in REST.
Long = NewType("Long", int)
LONG = strawberry.scalar(name="Long", serialize=_long, parse_value=_long,
                         description="A 64-bit integer: an amount in minor units, a balance.")


def build(cls: type[Built], data: dict[str, Any]) -> Built:
    """An object type from a REST answer's JSON: the fields it declares, nested types
    built in turn; fields the JSON lacks keep their defaults."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            values[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**values)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_convert(item, v) for v in value]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return build(hint, value)
    return value


# ------------------------------------------------------------------ pages


@strawberry.type(description="Relay page information. Pages are newest first: pass "
                 "`endCursor` as `after` for the next (older) page.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
    has_previous_page: bool = False
    start_cursor: str | None = None


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str = strawberry.field(description="Pass it as `after` to continue after "
                                   "this node (the REST API's cursor).")


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo


def connection(items: list[tuple[T, str]], next_cursor: str | None) -> Connection[T]:
    """A page of (node, its cursor), and the REST page's ``next_cursor``."""
    edges = [Edge(node=node, cursor=c) for node, c in items]
    return Connection(edges=edges, page_info=PageInfo(
        has_next_page=next_cursor is not None, end_cursor=next_cursor,
        start_cursor=edges[0].cursor if edges else None))


# ------------------------------------------------------------------ balances


@strawberry.type(description="One currency of a wallet, in minor units.")
class Balance:
    currency: str
    balance: Long = strawberry.field(description="Posted.")
    held: Long = strawberry.field(description="Reserved by open holds.")
    available: Long = strawberry.field(description="`balance - held`: what may be spent.")
    bonus: Long | None = strawberry.field(default=None, description=(
        "A user's bonus wallet: bonus money, not in `balance` (see `bonuses`); null for "
        "other accounts."))


@strawberry.type(description="A wallet's balance after an operation.")
class WalletBalance:
    balance: Long
    held: Long
    available: Long


@strawberry.type
class Posting:
    source: str
    destination: str
    amount: Long
    currency: str


@strawberry.type(description="A line of the caller's history: one entry of their wallet.")
class WalletTransaction:
    id: str
    transaction_id: str
    currency: str
    amount: Long = strawberry.field(description="Signed: negative when money left the wallet.")
    kind: str
    description: str
    reference_id: str
    balance_after: Long
    created_at: str
    posted_at: strawberry.Private[datetime]  # finds the transaction's month partition

    @strawberry.field(description="The transaction's postings (loaded for a whole page in "
                      "one read).")
    async def postings(self, info: strawberry.Info) -> list[Posting]:
        found = await info.context.loaders.postings.load((self.transaction_id, self.posted_at))
        return [Posting(source=p.source, destination=p.destination, amount=p.amount,
                        currency=p.currency) for p in found]


@strawberry.input(description="Filters of the history.")
class TransactionFilter:
    currency: str | None = None


@strawberry.type(description="Money reserved in the caller's wallet until a service "
                 "captures or voids it, or it expires.")
class Hold:
    id: str
    status: str
    currency: str
    amount: Long
    captured_amount: Long
    destination: str
    kind: str
    description: str
    reference_id: str
    created_at: str
    expires_at: str


# ------------------------------------------------------------------ gifts


@strawberry.enum
class GiftDirection(Enum):
    SENT = "sent"
    RECEIVED = "received"


@strawberry.type
class Gift:
    id: str
    transaction_id: str
    from_user_id: str
    to_user_id: str
    gift_type: str | None
    currency: str
    amount: Long
    receiver_amount: Long
    agency_id: str | None
    agency_commission: Long
    platform_fee: Long
    message: str | None
    context_id: str | None
    created_at: str


@strawberry.type
class SentGift(Gift):
    giver_wallet: WalletBalance


# ------------------------------------------------------------------ top-ups


@strawberry.type
class Price:
    amount: Long
    currency: str


@strawberry.type(description="A top-up's payment order.")
class Topup:
    id: str
    status: str
    provider: str
    package_id: str | None
    currency: str
    amount: Long
    bonus: Long
    price: Price
    checkout_url: str | None
    client_params: JSON | None
    transaction_id: str | None
    reversal_transaction_id: str | None
    reversed_amount: Long
    debt_amount: Long
    created_at: str
    updated_at: str
    expires_at: str
    paid_at: str | None


# ------------------------------------------------------------------ withdrawals


@strawberry.type
class Withdrawal:
    id: str
    status: str
    currency: str
    amount: Long
    destination: JSON
    reason: str | None
    transaction_id: str | None
    payout_reference: str | None
    payout_error: str | None
    created_at: str
    updated_at: str


@strawberry.type
class WithdrawalCreated(Withdrawal):
    wallet: WalletBalance


# ------------------------------------------------------------------ kyc


@strawberry.type
class KycSubmission:
    id: str
    tier: int
    status: str
    reason: str | None
    created_at: str | None
    reviewed_at: str | None


@strawberry.type
class KycTier:
    tier: int
    requires: list[str]
    withdrawals: bool
    limits: JSON


@strawberry.type(description="The caller's KYC tier, its limits, the next tier and their "
                 "latest submission.")
class Kyc(KycTier):
    user_id: str
    next_tier: KycTier | None
    submission: KycSubmission | None


# ------------------------------------------------------------------ shop


@strawberry.type
class Product:
    id: str
    merchant_id: str
    name: str
    description: str
    price: Long
    currency: str
    stock: Long
    in_stock: bool
    active: bool
    metadata: JSON
    version: Long
    created_at: str
    updated_at: str


@strawberry.enum
class OrderStatus(Enum):
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


@strawberry.type
class ShopOrder:
    id: str
    status: str
    buyer_id: str
    merchant_id: str
    product_id: str
    product_name: str
    quantity: int
    unit_price: Long
    currency: str
    amount: Long
    fee: Long
    merchant_amount: Long
    refunded_amount: Long
    refunded_fee: Long
    restocked_quantity: int
    transaction_id: str
    created_at: str
    updated_at: str


@strawberry.type
class ShopOrderCreated(ShopOrder):
    buyer_wallet: WalletBalance


# ------------------------------------------------------------------ bonuses


@strawberry.enum
class BonusStatus(Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    FORFEITED = "forfeited"
    EXPIRED = "expired"


@strawberry.type
class BonusProgress:
    wagered: Long
    required: Long
    left: Long = strawberry.field(description="What is still to wager.")
    percent: float
    expires_at: str


@strawberry.type(description="A bonus: granted to the bonus wallet, converted to cash once "
                 "wagered (`GET /api/v1/bonuses`).")
class Bonus:
    id: str
    promotion_id: str
    promotion_code: str
    kind: str
    currency: str
    description: str
    granted: Long
    remaining: Long
    status: str
    progress: BonusProgress
    max_conversion: Long | None
    converted: Long
    forfeited: Long
    transaction_id: str
    created_at: str
    expires_at: str
    closed_at: str | None


# ------------------------------------------------------------------ services' views


@strawberry.type(description="A user's balances (services, scope `wallet:read`).")
class UserWallet:
    user_id: str
    wallets: list[Balance]


@strawberry.type(description="Any address's balances, system accounts included (services, "
                 "scope `wallet:read`).")
class Account:
    address: str
    balances: list[Balance]


@strawberry.type
class Entry:
    id: str
    posting_index: int
    address: str
    currency: str
    amount: Long
    balance_after: Long


@strawberry.type(description="A transaction as stored, with its entries and internal notes "
                 "(services, scope `wallet:read`).")
class AuditTransaction:
    id: str
    kind: str
    description: str
    reference_id: str
    metadata: JSON
    postings: list[Posting]
    service: str | None
    initiator: str
    internal_notes: str | None
    idempotency_key: str | None
    created_at: str
    entries: list[Entry]


# ------------------------------------------------------------------ mutations


@strawberry.input
class SendGiftInput:
    to_user_id: str
    gift_type: str | None = None
    amount: Long | None = None
    currency: str | None = None
    message: str | None = None
    context_id: str | None = None


@strawberry.input
class CreateTopupInput:
    package_id: str | None = None
    amount: Long | None = None
    currency: str | None = None
    provider: str | None = strawberry.field(default=None, description="mock (the default), "
                                            "stripe or razorpay.")


@strawberry.input
class RequestWithdrawalInput:
    currency: str
    amount: Long
    destination: JSON


@strawberry.input
class PurchaseInput:
    product_id: str
    quantity: int | None = None
    expected_unit_price: Long | None = None


@strawberry.type
class SendGiftPayload:
    gift: SentGift
    replayed: bool = strawberry.field(description="True when this answers an earlier call "
                                      "with the same idempotency key.")


@strawberry.type
class CreateTopupPayload:
    topup: Topup
    replayed: bool


@strawberry.type
class RequestWithdrawalPayload:
    withdrawal: WithdrawalCreated
    replayed: bool


@strawberry.type
class CancelWithdrawalPayload:
    withdrawal: Withdrawal


@strawberry.type
class ClaimBonusPayload:
    bonus: Bonus
    replayed: bool


@strawberry.type
class PurchasePayload:
    order: ShopOrderCreated
    replayed: bool


# ------------------------------------------------------------------ subscriptions


@strawberry.type(description="One of the caller's notifications (`GET /api/v1/"
                 "notifications`).")
class Notification:
    id: str
    kind: str
    title: str
    body: str
    data: JSON
    event_id: str
    created_at: str
    read_at: str | None


@strawberry.type
class NotificationConnection(Connection[Notification]):
    unread_count: int


@strawberry.type
class MarkNotificationsReadPayload:
    notifications: list[Notification] = strawberry.field(description="Those of `ids`, read "
                                                        "(none when every one was marked).")
    unread_count: int


@strawberry.type(description="A balance of one of the caller's wallets changed.")
class BalanceUpdate:
    wallet: str = strawberry.field(description="`main`, or a sub-wallet's name (`bonus`).")
    address: str
    currency: str
    balance: Long
    held: Long
    available: Long
    version: Long
    transaction_id: str | None
    hold_id: str | None
    event_id: str = strawberry.field(description="The event log's id of the change.")
