"""The shop's requests and answers: one definition each, for validation, the OpenAPI
document and the JSON sent."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from coinpurse.core.types import (
    AMOUNT_MAX,
    CurrencyCode,
    Metadata,
    StrictModel,
    Timestamp,
    clean_text,
)
from coinpurse.ledger.model import Balance
from coinpurse.shop.model import Order, Product, Refund, SalesTotal
from coinpurse.shop.settings import QUANTITY_LIMIT
from coinpurse.wallets.schemas import BalanceOut

NAME_MAX = 120
DESCRIPTION_MAX = 2000
ID_PATTERN = r"^[0-9a-f-]{1,36}$"

Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX), clean_text,
                 Field(description=f"1 to {NAME_MAX} characters.", examples=["Golden sword"])]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX), clean_text,
                        Field(description=f"At most {DESCRIPTION_MAX} characters.")]
Price = Annotated[StrictInt, Field(ge=1, le=AMOUNT_MAX, examples=[250],
                                   description="Per unit, in minor units, 1 to 2^63-1.")]
Stock = Annotated[StrictInt, Field(ge=0, le=AMOUNT_MAX, examples=[10],
                                   description="Units for sale, 0 to 2^63-1 (absolute).")]
Quantity = Annotated[StrictInt, Field(ge=1, le=QUANTITY_LIMIT, description=(
    "Units to buy: 1 to COINPURSE_SHOP_QUANTITY_MAX (default 100)."))]
RefundAmount = Annotated[StrictInt, Field(ge=1, le=AMOUNT_MAX, description=(
    "What to pay back, in minor units; default: everything not refunded yet."))]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500), clean_text]
ProductId = Annotated[str, StringConstraints(pattern=ID_PATTERN),
                      Field(examples=["0190a0b0-0000-7000-8000-000000000001"])]

# ---------------------------------------------------------------- requests


class ProductIn(StrictModel):
    name: Name
    description: Description = ""
    price: Price
    currency: CurrencyCode
    stock: Stock
    active: StrictBool = Field(default=True, description="Listed in the catalog and for sale.")
    metadata: Metadata = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "Golden sword", "description": "Deals double damage", "price": 250,
        "currency": "points", "stock": 10, "active": True, "metadata": {"sku": "sw-gold"}}]})


class ProductPatchIn(StrictModel):
    """Only the fields sent change; `stock` is the new absolute number of units. The
    currency and the merchant of a product never change."""

    name: Name | None = None
    description: Description | None = None
    price: Price | None = None
    stock: Stock | None = None
    active: StrictBool | None = None
    metadata: Metadata | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"price": 300}, {"stock": 25, "active": True}]})

    @model_validator(mode="after")
    def _sent_and_not_null(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        nulls = sorted(f for f in self.model_fields_set if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.model_fields_set}


class OrderIn(StrictModel):
    product_id: ProductId
    quantity: Quantity = 1
    expected_unit_price: Price | None = Field(default=None, description=(
        "The unit price the buyer saw; if the product now costs something else the order "
        "is refused (409 `price_changed`) and nothing is charged."))

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "product_id": "0190a0b0-0000-7000-8000-000000000001", "quantity": 1,
        "expected_unit_price": 250}]})


class RefundIn(StrictModel):
    amount: RefundAmount | None = None
    restock: StrictBool = Field(default=False, description=(
        "Put the units this refund pays back (in whole units, pro rata) back in stock."))
    reason: Reason

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"restock": True, "reason": "Item not delivered"},
        {"amount": 100, "restock": False, "reason": "Partial refund: damaged"}]})


# ---------------------------------------------------------------- answers


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    def answer(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ProductOut(Out):
    id: str
    merchant_id: str
    name: str
    description: str
    price: int
    currency: str
    stock: int
    in_stock: bool
    active: bool
    metadata: dict[str, Any]
    version: int = Field(description='Counts the changes; the ETag is `"v<version>"`.')
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        return cls.model_validate(product)


class ProductPage(Out):
    data: list[ProductOut]
    next_cursor: str | None


class ShopOrderOut(Out):
    id: str
    status: str = Field(description="paid, partially_refunded or refunded")
    buyer_id: str
    merchant_id: str
    product_id: str
    product_name: str = Field(description="The product's name when it was bought.")
    quantity: int
    unit_price: int
    currency: str
    amount: int = Field(description="What the buyer paid: unit_price x quantity.")
    fee: int = Field(description="The platform's share (COINPURSE_SHOP_FEE_BP, rounded down).")
    merchant_amount: int = Field(description="What the merchant received: amount - fee.")
    refunded_amount: int
    refunded_fee: int = Field(description="Of the refunds, what the platform returned.")
    restocked_quantity: int
    transaction_id: str
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, order: Order) -> ShopOrderOut:
        return cls.model_validate(order)


class ShopOrderCreatedOut(ShopOrderOut):
    buyer_wallet: BalanceOut = Field(description="The buyer's wallet after the purchase.")
    from_cash: int = Field(description="What the buyer's cash wallet paid.")
    from_bonus: int = Field(description="What the buyer's bonus wallet paid (see Bonuses).")

    @classmethod
    def created(cls, order: Order, wallet: Balance, *, from_cash: int,
                from_bonus: int) -> ShopOrderCreatedOut:
        return cls(**ShopOrderOut.of(order).model_dump(),
                   buyer_wallet=BalanceOut(**wallet.as_dict()), from_cash=from_cash,
                   from_bonus=from_bonus)


class RefundOut(Out):
    id: str
    order_id: str
    amount: int = Field(description="Paid back to the buyer in all.")
    fee: int = Field(description="Of it, the platform's fee returned (pro rata).")
    merchant_amount: int = Field(description="Of it, taken from the merchant's wallet.")
    restock_quantity: int
    reason: str
    refunded_by: str = Field(description="user:<merchant id> or admin:<id>")
    transaction_id: str
    created_at: Timestamp

    @classmethod
    def of(cls, refund: Refund) -> RefundOut:
        return cls.model_validate(refund)


class ShopOrderDetailOut(ShopOrderOut):
    refunds: list[RefundOut]

    @classmethod
    def detailed(cls, order: Order, refunds: list[Refund]) -> ShopOrderDetailOut:
        return cls(**ShopOrderOut.of(order).model_dump(),
                   refunds=[RefundOut.of(x) for x in refunds])


class RefundCreatedOut(RefundOut):
    order: ShopOrderOut = Field(description="The order after the refund.")

    @classmethod
    def created(cls, refund: Refund, order: Order) -> RefundCreatedOut:
        return cls(**RefundOut.of(refund).model_dump(), order=ShopOrderOut.of(order))


class ShopOrderPage(Out):
    data: list[ShopOrderOut]
    next_cursor: str | None


class SalesTotalOut(Out):
    product_id: str
    product_name: str = Field(description="The product's current name.")
    currency: str
    orders: int
    quantity: int
    amount: int
    fee: int
    refunded_amount: int
    refunded_fee: int
    restocked_quantity: int
    net_amount: int = Field(description="What the merchant kept: amount - fee - "
                            "(refunded_amount - refunded_fee).")

    @classmethod
    def of(cls, total: SalesTotal) -> SalesTotalOut:
        return cls.model_validate(total)


class SalesOut(Out):
    data: list[ShopOrderOut]
    next_cursor: str | None
    totals: list[SalesTotalOut] = Field(description=(
        "Per product and currency, over every order of the filter, not only this page."))
