"""Request and response models of KYC."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from coinpurse.core.types import StrictModel, clean_text

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True),
                 clean_text]
DocumentRef = Annotated[
    str, StringConstraints(min_length=1, max_length=500), clean_text,
    Field(description="A reference to a document stored elsewhere (a storage key or URL), "
          "never the image itself."),
]


class KycIn(StrictModel):
    tier: Annotated[StrictInt, Field(ge=1, le=9)]
    full_name: Text | None = None
    date_of_birth: date | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"),
                       Field(description="ISO 3166-1 alpha-2.")] | None = None
    id_document_ref: DocumentRef | None = None
    selfie_ref: DocumentRef | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "tier": 1, "full_name": "Ada Lovelace", "date_of_birth": "1990-12-10",
        "country": "GB"}]})


class DecisionIn(StrictModel):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500), clean_text] | None \
        = None


class RejectIn(StrictModel):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500), clean_text]


class SubmissionOut(BaseModel):
    id: str
    tier: int
    status: str = Field(description="pending, approved, rejected")
    reason: str | None
    created_at: str | None
    reviewed_at: str | None


class AdminSubmissionOut(SubmissionOut):
    user_id: str
    data: dict[str, Any]
    reviewed_by: str | None


class TierOut(BaseModel):
    tier: int
    requires: list[str]
    withdrawals: bool
    limits: dict[str, dict[str, int | None]] = Field(
        description="Per currency: max_balance, topup_max, topup_daily, withdraw_daily, "
        "withdraw_monthly (minor units; null: no limit).")


class KycStatusOut(TierOut):
    user_id: str
    next_tier: TierOut | None
    submission: SubmissionOut | None


class SubmissionPage(BaseModel):
    data: list[AdminSubmissionOut]
    next_cursor: str | None
