"""Top-ups' requests and answers: one definition each, for validation, the OpenAPI
document and the JSON sent."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from coinpurse.bonuses.schemas import Code
from coinpurse.core.types import Amount, CurrencyCode, StrictModel, Timestamp
from coinpurse.payments.model import InboxEvent, PaymentOrder
from coinpurse.payments.packages import Package, Rate

Provider = Literal["mock", "stripe", "razorpay"]
Token = Annotated[str, StringConstraints(min_length=1, max_length=255,
                                         pattern=r"^[A-Za-z0-9_.:|=-]+$")]


class PriceOut(BaseModel):
    amount: int = Field(description="In the price currency's minor units (999 = 9.99).")
    currency: str = Field(description="ISO 4217 code, lower case.")


class PackageOut(BaseModel):
    id: str
    currency: str
    amount: int
    bonus: int
    total: int
    price: PriceOut

    @classmethod
    def from_domain(cls, p: Package) -> PackageOut:
        return PackageOut(id=p.id, currency=p.currency, amount=p.amount, bonus=p.bonus,
                          total=p.total, price=PriceOut(amount=p.price,
                                                        currency=p.price_currency))


class RateOut(BaseModel):
    currency: str
    per: int
    price: PriceOut

    @classmethod
    def from_domain(cls, r: Rate) -> RateOut:
        return RateOut(currency=r.currency, per=r.per,
                       price=PriceOut(amount=r.price, currency=r.price_currency))


class PackagesOut(BaseModel):
    data: list[PackageOut]
    rates: list[RateOut] = Field(description="Top-ups by amount (empty: packages only).")
    providers: list[str]

    @classmethod
    def of(cls, packages: Iterable[Package], rates: Iterable[Rate],
           providers: Iterable[str]) -> PackagesOut:
        return PackagesOut(data=[PackageOut.from_domain(p) for p in packages],
                           rates=[RateOut.from_domain(r) for r in rates],
                           providers=list(providers))


class TopupIn(StrictModel):
    package_id: Annotated[str | None, Field(max_length=32)] = None
    amount: Amount | None = None
    currency: CurrencyCode | None = None
    provider: Provider = "mock"
    promo_code: Code | None = Field(
        default=None, description="A deposit match's code: its bonus comes with the credit.")

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"package_id": "medium", "provider": "stripe"}]})

    @model_validator(mode="after")
    def _one_of(self) -> TopupIn:
        if (self.package_id is None) == (self.amount is None):
            raise ValueError("send either package_id, or amount and currency")
        if self.amount is not None and self.currency is None:
            raise ValueError("an amount needs its currency")
        return self


class OrderOut(BaseModel):
    id: str
    status: str = Field(description="created, pending, succeeded, failed, refunded, disputed")
    provider: str
    package_id: str | None
    currency: str
    amount: int
    bonus: int
    price: PriceOut
    checkout_url: str | None = Field(description="Send the user here to pay (mock, stripe).")
    client_params: dict[str, Any] | None = Field(
        description="For the provider's client-side checkout (razorpay: key, order_id, ...).")
    transaction_id: str | None
    reversal_transaction_id: str | None
    reversed_amount: int
    debt_amount: int
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp
    paid_at: Timestamp | None

    @classmethod
    def from_domain(cls, order: PaymentOrder) -> Self:
        return cls.model_validate(order, from_attributes=True)


class AdminOrderOut(OrderOut):
    user_id: str
    provider_order_id: str | None
    provider_payment_id: str | None
    error: str | None
    reversed_at: Timestamp | None


class OrderPage(BaseModel):
    data: list[OrderOut]
    next_cursor: str | None


class AdminOrderPage(BaseModel):
    data: list[AdminOrderOut]
    next_cursor: str | None


class VerifyIn(StrictModel):
    """What the provider's checkout handed the client. razorpay: ``razorpay_order_id``,
    ``razorpay_payment_id``, ``razorpay_signature``; mock: ``payment_id``, ``signature``;
    stripe: nothing (Coinpurse asks Stripe for the session)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"razorpay_order_id": "order_NcE7g1yJk9TGJ2",
         "razorpay_payment_id": "pay_NcE8HrZQ7mXyLa",
         "razorpay_signature": "9ef4dffbfd84f1318f6739a3ce19f9d85851857ae648f114332d8401e0949a3d"}
    ]})


    razorpay_order_id: Token | None = None
    razorpay_payment_id: Token | None = None
    razorpay_signature: Token | None = None
    payment_id: Token | None = None
    signature: Token | None = None


class WebhookAck(BaseModel):
    received: bool
    duplicate: bool
    id: int


class EventOut(BaseModel):
    id: int
    provider: str
    event_id: str
    event_type: str
    status: str = Field(description="received (waiting or retrying), processed, ignored, "
                        "failed (gave up; an operator looks)")
    attempts: int
    next_attempt_at: Timestamp | None
    last_error: str | None
    order_id: str | None
    received_at: Timestamp | None
    processed_at: Timestamp | None

    @classmethod
    def from_domain(cls, event: InboxEvent) -> Self:
        return cls.model_validate(event, from_attributes=True)


class EventDetailOut(EventOut):
    body: Any = Field(description="The event as the provider sent it: JSON, or text when "
                      "it is not JSON.")


class EventPage(BaseModel):
    data: list[EventOut]
    next_cursor: str | None
