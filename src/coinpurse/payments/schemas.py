"""Request and response models of top-ups."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from coinpurse.core.types import Amount, CurrencyCode, StrictModel

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


class RateOut(BaseModel):
    currency: str
    per: int
    price: PriceOut


class PackagesOut(BaseModel):
    data: list[PackageOut]
    rates: list[RateOut] = Field(description="Top-ups by amount (empty: packages only).")
    providers: list[str]


class TopupIn(StrictModel):
    package_id: Annotated[str | None, Field(max_length=32)] = None
    amount: Amount | None = None
    currency: CurrencyCode | None = None
    provider: Provider = "mock"

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
    created_at: str
    updated_at: str
    expires_at: str
    paid_at: str | None


class AdminOrderOut(OrderOut):
    user_id: str
    provider_order_id: str | None
    provider_payment_id: str | None
    error: str | None
    reversed_at: str | None


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
    next_attempt_at: str | None
    last_error: str | None
    order_id: str | None
    received_at: str | None
    processed_at: str | None
    body: Any = None


class EventPage(BaseModel):
    data: list[EventOut]
    next_cursor: str | None
