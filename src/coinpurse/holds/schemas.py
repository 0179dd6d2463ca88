"""Holds' requests and answers: each shape defined once, for validation, the OpenAPI
document and the answer."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from coinpurse.core.clock import iso
from coinpurse.core.types import (
    Address,
    Amount,
    CurrencyCode,
    Description,
    Kind,
    Metadata,
    ReferenceId,
    StrictModel,
    UserId,
)
from coinpurse.ledger.model import Balance, HoldState
from coinpurse.wallets.schemas import BalanceOut

EXPIRES_IN_MAX_S = 7 * 86_400


class HoldIn(StrictModel):
    user_id: UserId
    currency: CurrencyCode
    amount: Amount
    destination: Address | None = Field(
        default=None,
        description="Where a capture sends the money; default your service's account.",
    )
    description: Description
    reference_id: ReferenceId
    expires_in_s: Annotated[StrictInt, Field(ge=1, le=EXPIRES_IN_MAX_S)] = Field(
        default=900, description=f"Seconds until it releases itself (1 to {EXPIRES_IN_MAX_S})."
    )
    kind: Kind = Field(default="payment",
                       description="The kind of the transaction a capture posts.")
    metadata: Metadata = Field(default_factory=dict)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "user_id": "123", "currency": "points", "amount": 600,
            "description": "Video call with host 77", "reference_id": "call_991",
            "destination": "user:77", "expires_in_s": 900,
        }]},
    )

    @model_validator(mode="after")
    def _elsewhere(self) -> HoldIn:
        if self.destination is not None and self.destination == f"user:{self.user_id}":
            raise ValueError("the destination must be another account than the user's own")
        return self


class CaptureIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"amount": 300}
    ]})

    amount: Amount | None = Field(default=None,
                                  description="At most the held amount; default all of it.")


class HoldOut(BaseModel):
    id: str
    status: str = Field(description="held, captured, voided or expired.")
    user_id: str
    currency: str
    amount: int
    captured_amount: int
    released_amount: int
    destination: str
    kind: str
    description: str
    reference_id: str
    metadata: dict[str, Any]
    service: str
    transaction_id: str | None
    created_at: str
    expires_at: str
    closed_at: str | None
    wallet: BalanceOut | None = Field(
        default=None, description="The user's balance after the operation (writes only)."
    )

    @classmethod
    def of(cls, hold: HoldState, wallet: Balance | None = None) -> HoldOut:
        released = hold.amount - hold.captured_amount if hold.status != "held" else 0
        return cls.model_validate({
            "id": hold.id, "status": hold.status, "user_id": hold.address.removeprefix("user:"),
            "currency": hold.currency, "amount": hold.amount,
            "captured_amount": hold.captured_amount, "released_amount": released,
            "destination": hold.destination, "kind": hold.kind,
            "description": hold.description, "reference_id": hold.reference_id,
            "metadata": hold.metadata, "service": hold.service,
            "transaction_id": hold.transaction_id, "created_at": iso(hold.created_at),
            "expires_at": iso(hold.expires_at), "closed_at": iso(hold.closed_at),
            "wallet": wallet.as_dict() if wallet is not None else None,
        })

    def answer(self) -> bytes:
        """A read has no ``wallet``: the key is left out, not null."""
        leave_out = {"wallet"} if self.wallet is None else None
        return self.model_dump_json(exclude=leave_out).encode()
