"""The shop's values and its arithmetic: fees, refund shares, restocked units.

Every split is rounded down and computed on running totals, so parts always add up to the
whole: a full refund in any number of parts returns exactly the order's fee and its units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

BPS = 10_000
STATUSES = ("paid", "partially_refunded", "refunded")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling, as the shop's rules need it."""

    user_id: str
    role: str = "user"  # user, merchant, admin, auditor
    admin: bool = False  # may change anything (an admin, with 2FA where sign-in is ours)
    reader: bool = False  # may read anything (admins and auditors, likewise)

    @property
    def initiator(self) -> str:
        return f"admin:{self.user_id}" if self.admin else f"user:{self.user_id}"


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    merchant_id: str
    name: str
    description: str
    price: int
    currency: str
    stock: int
    active: bool
    metadata: Mapping[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    @property
    def etag(self) -> str:
        """A strong ETag: every change of the product bumps its version."""
        return f'"v{self.version}"'


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    buyer_id: str
    merchant_id: str
    product_id: str
    product_name: str
    quantity: int
    unit_price: int
    currency: str
    amount: int
    fee: int
    refunded_amount: int
    refunded_fee: int
    restocked_quantity: int
    status: str
    transaction_id: str
    created_at: datetime
    updated_at: datetime

    @property
    def merchant_amount(self) -> int:
        return self.amount - self.fee

    @property
    def refundable(self) -> int:
        return self.amount - self.refunded_amount

    def after_refund(self, share: RefundShare, at: datetime) -> Order:
        refunded = self.refunded_amount + share.amount
        return dataclasses.replace(
            self, refunded_amount=refunded, refunded_fee=self.refunded_fee + share.fee,
            restocked_quantity=self.restocked_quantity + share.restock_quantity,
            status="refunded" if refunded == self.amount else "partially_refunded",
            updated_at=at)


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    order_id: str
    product_id: str
    amount: int
    fee: int
    restock_quantity: int
    reason: str
    refunded_by: str
    transaction_id: str
    created_at: datetime

    @property
    def merchant_amount(self) -> int:
        return self.amount - self.fee


@dataclass(frozen=True, slots=True)
class RefundShare:
    """Who pays a refund back: the merchant ``amount - fee``, the fee account ``fee``."""

    amount: int
    fee: int
    restock_quantity: int


def order_fee(amount: int, fee_bp: int) -> int:
    """The platform's share of a sale, rounded down."""
    return amount * fee_bp // BPS


def refund_share(order: Order, amount: int, *, restock: bool) -> RefundShare:
    """The fee returned pro rata and the units the refund pays back, on running totals
    (``order`` already counts earlier refunds), so the last part returns the remainder."""
    before, after = order.refunded_amount, order.refunded_amount + amount
    assert amount > 0 and after <= order.amount
    fee = order.fee * after // order.amount - order.refunded_fee
    units = order.quantity * after // order.amount - order.quantity * before // order.amount
    return RefundShare(amount, fee, units if restock else 0)


@dataclass(frozen=True, slots=True)
class ProductFilter:
    merchant_id: str | None = None
    q: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    currency: str | None = None
    in_stock: bool | None = None
    active: bool | None = None
    include_inactive: bool = False  # the merchant's own list


@dataclass(frozen=True, slots=True)
class OrderFilter:
    buyer_id: str | None = None
    merchant_id: str | None = None
    product_id: str | None = None
    status: str | None = None
    currency: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class SalesTotal:
    """A merchant's sales of one product in one currency, for a whole filter."""

    product_id: str
    product_name: str
    currency: str
    orders: int
    quantity: int
    amount: int
    fee: int
    refunded_amount: int
    refunded_fee: int
    restocked_quantity: int

    @property
    def net_amount(self) -> int:
        """What the merchant kept: sales less fees, less refunds net of returned fees."""
        return self.amount - self.fee - (self.refunded_amount - self.refunded_fee)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    data: list[T]
    next_id: str | None
