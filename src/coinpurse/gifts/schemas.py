"""Request and response models of gifts and agencies."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from coinpurse.core.types import USER_ID_RE, Amount, CurrencyCode, StrictModel, UserId, clean_text
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


class SentGiftOut(GiftOut):
    giver_wallet: BalanceOut = Field(description="The giver's balance after the gift.")


class GiftPage(BaseModel):
    data: list[GiftOut]
    next_cursor: str | None


class AgencyIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"agency_id": "7"}
    ]})

    agency_id: AgencyId | None = Field(description="The agency's id, or null to clear it.")


class AgencyOut(BaseModel):
    user_id: str
    agency_id: str | None
