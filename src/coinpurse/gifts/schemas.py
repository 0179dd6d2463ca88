"""Gifts' and agencies' requests and answers: each shape defined once, for validation,
the OpenAPI document and the answer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from coinpurse.core.clock import iso
from coinpurse.core.pages import Page
from coinpurse.core.types import USER_ID_RE, Amount, CurrencyCode, StrictModel, UserId, clean_text
from coinpurse.gifts.repository import Gift
from coinpurse.gifts.settings import GiftType
from coinpurse.ledger.model import Balance
from coinpurse.wallets.schemas import BalanceOut

AgencyId = Annotated[str, StringConstraints(pattern=USER_ID_RE)]
GiftMessage = Annotated[str, StringConstraints(max_length=500), clean_text]
ContextId = Annotated[str, StringConstraints(min_length=1, max_length=128), clean_text]


class GiftTypeOut(BaseModel):
    gift_type: str
    price: int
    currency: str


class CatalogOut(BaseModel):
    data: list[GiftTypeOut]

    @classmethod
    def of(cls, types: Iterable[GiftType]) -> CatalogOut:
        return cls.model_validate({"data": [
            {"gift_type": g.code, "price": g.price, "currency": g.currency} for g in types]})


class GiftIn(StrictModel):
    """Either a `gift_type` from the catalog or an `amount` (with its `currency`)."""

    to_user_id: UserId
    gift_type: Annotated[str, StringConstraints(max_length=32)] | None = None
    amount: Amount | None = None
    currency: CurrencyCode | None = None
    message: GiftMessage | None = None
    context_id: ContextId | None = Field(default=None,
                                         description="A call or stream id, for your records.")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"to_user_id": "host77", "gift_type": "rose", "message": "Great stream!",
         "context_id": "stream_5512"},
        {"to_user_id": "host77", "amount": 120, "currency": "diamonds"},
    ]})

    @model_validator(mode="after")
    def _one_of(self) -> GiftIn:
        if (self.gift_type is None) == (self.amount is None):
            raise ValueError("send either gift_type or amount, not both")
        if self.amount is not None and self.currency is None:
            raise ValueError("an amount needs its currency")
        return self


def _gift_fields(g: Gift) -> dict[str, Any]:
    return {
        "id": g.id, "transaction_id": g.transaction_id, "from_user_id": g.from_user_id,
        "to_user_id": g.to_user_id, "gift_type": g.gift_type, "currency": g.currency,
        "amount": g.amount, "receiver_amount": g.receiver_amount, "agency_id": g.agency_id,
        "agency_commission": g.agency_amount, "platform_fee": g.platform_fee,
        "message": g.message, "context_id": g.context_id, "created_at": iso(g.created_at),
    }


class GiftOut(BaseModel):
    id: str
    transaction_id: str
    from_user_id: str
    to_user_id: str
    gift_type: str | None
    currency: str
    amount: int
    receiver_amount: int = Field(description="What the receiver earned.")
    agency_id: str | None
    agency_commission: int
    platform_fee: int
    message: str | None
    context_id: str | None
    created_at: str

    @classmethod
    def of(cls, g: Gift) -> GiftOut:
        return cls.model_validate(_gift_fields(g))


class SentGiftOut(GiftOut):
    giver_wallet: BalanceOut = Field(description="The giver's balance after the gift.")

    @classmethod
    def of_sent(cls, g: Gift, giver_wallet: Balance) -> SentGiftOut:
        return cls.model_validate({**_gift_fields(g), "giver_wallet": giver_wallet.as_dict()})


class GiftQuoteOut(BaseModel):
    """A gift's split before it is sent (``service.GiftPlan``)."""

    to_user_id: str
    gift_type: str | None
    currency: str
    amount: int = Field(description="What the giver pays.")
    receiver_amount: int
    agency_commission: int
    platform_fee: int


class GiftPage(BaseModel):
    data: list[GiftOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[Gift]) -> GiftPage:
        return cls.model_validate({"data": [_gift_fields(g) for g in page.items],
                                   "next_cursor": page.next_cursor})


class AgencyIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"agency_id": "7"}
    ]})

    agency_id: AgencyId | None = Field(description="The agency's id, or null to clear it.")


class AgencyOut(BaseModel):
    user_id: str
    agency_id: str | None
