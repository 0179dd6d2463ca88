"""Withdrawals' requests and answers: one definition each, for validation, the OpenAPI
document and the JSON sent."""

from __future__ import annotations

from typing import Annotated, Any, Self

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from coinpurse.core.types import Amount, CurrencyCode, StrictModel, Timestamp, clean_text
from coinpurse.ledger.model import Balance
from coinpurse.wallets.schemas import BalanceOut
from coinpurse.withdrawals.model import Withdrawal

DESTINATION_MAX_BYTES = 2048


def _check_destination(value: dict[str, Any]) -> dict[str, Any]:
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # a lone surrogate, an int past 64 bits: not a 500
        raise ValueError("must be plain JSON: text without lone surrogates, integers within "
                         "64 bits, nesting that is not too deep") from None
    if size > DESTINATION_MAX_BYTES:
        raise ValueError(f"must be at most {DESTINATION_MAX_BYTES} bytes as JSON, not {size}")
    if not value:
        raise ValueError("must not be empty")
    return value


Destination = Annotated[
    dict[str, Any], AfterValidator(_check_destination),
    Field(description="Where to pay out: opaque details for the payout provider (e.g. "
          f"{{\"type\": \"upi\", \"vpa\": \"host@bank\"}}), at most {DESTINATION_MAX_BYTES} "
          "bytes as JSON."),
]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500), clean_text]


class WithdrawalIn(StrictModel):
    currency: CurrencyCode
    amount: Amount
    destination: Destination

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "currency": "diamonds", "amount": 5000,
        "destination": {"type": "bank", "iban": "DE89370400440532013000"}}]})


class RejectIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"reason": "The details do not match the account holder"}
    ]})

    reason: Reason


class WithdrawalOut(BaseModel):
    id: str
    status: str = Field(description="pending, cancelled, rejected, expired, approved "
                        "(captured; payout not confirmed yet), paid")
    currency: str
    amount: int
    destination: dict[str, Any]
    reason: str | None
    transaction_id: str | None
    payout_reference: str | None
    payout_error: str | None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def from_domain(cls, withdrawal: Withdrawal) -> Self:
        return cls.model_validate(withdrawal, from_attributes=True)


class WithdrawalCreatedOut(WithdrawalOut):
    wallet: BalanceOut = Field(description="The balance after the request.")

    @classmethod
    def of(cls, withdrawal: Withdrawal, wallet: Balance) -> WithdrawalCreatedOut:
        fields = WithdrawalOut.from_domain(withdrawal).model_dump()
        return WithdrawalCreatedOut(**fields, wallet=BalanceOut(**wallet.as_dict()))


class AdminWithdrawalOut(WithdrawalOut):
    user_id: str
    hold_id: str
    decided_by: str | None
    payout_provider: str | None


class WithdrawalPage(BaseModel):
    data: list[WithdrawalOut]
    next_cursor: str | None


class AdminWithdrawalPage(BaseModel):
    data: list[AdminWithdrawalOut]
    next_cursor: str | None


class PeriodOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    limit: int | None = Field(description="Null: no limit at this tier.")
    used: int = Field(description="Pending, approved and paid withdrawals in the period.")


class CurrencyLimitsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    currency: str
    min_amount: int
    max_amount: int | None
    daily: PeriodOut
    monthly: PeriodOut


class WithdrawalLimitsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    tier: int = Field(description="The caller's KYC tier.")
    allowed: bool = Field(description="Whether this tier may withdraw at all.")
    required_tier: int | None = Field(description="The lowest tier that may withdraw.")
    debt: int = Field(description="Left by refunded top-ups; withdrawals wait until repaid.")
    currencies: list[CurrencyLimitsOut]
