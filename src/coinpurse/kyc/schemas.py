"""KYC's requests and answers: one definition each, for validation, the OpenAPI document
and the JSON sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from coinpurse.core.types import StrictModel, Timestamp, clean_text
from coinpurse.kyc.model import KycStatus, KycSubmission
from coinpurse.kyc.tiers import Tier

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
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"reason": "Documents checked"}
    ]})

    reason: Annotated[str, StringConstraints(min_length=1, max_length=500), clean_text] | None \
        = None


class RejectIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"reason": "The details do not match the account holder"}
    ]})

    reason: Annotated[str, StringConstraints(min_length=1, max_length=500), clean_text]


class SubmissionOut(BaseModel):
    id: str
    tier: int
    status: str = Field(description="pending, approved, rejected")
    reason: str | None
    created_at: Timestamp | None
    reviewed_at: Timestamp | None

    @classmethod
    def from_domain(cls, submission: KycSubmission) -> Self:
        return cls.model_validate(submission, from_attributes=True)


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

    @classmethod
    def from_tier(cls, tier: Tier, currencies: Sequence[str]) -> TierOut:
        return TierOut(tier=tier.level, requires=list(tier.requires),
                       withdrawals=tier.withdrawals, limits=tier.limits_table(currencies))


class KycStatusOut(TierOut):
    user_id: str
    next_tier: TierOut | None
    submission: SubmissionOut | None

    @classmethod
    def from_domain(cls, status: KycStatus) -> KycStatusOut:
        current = TierOut.from_tier(status.tier, status.currencies)
        return KycStatusOut(
            user_id=status.user_id, **current.model_dump(),
            next_tier=TierOut.from_tier(status.next_tier, status.currencies)
            if status.next_tier is not None else None,
            submission=SubmissionOut.from_domain(status.submission)
            if status.submission is not None else None)


class SubmissionPage(BaseModel):
    data: list[AdminSubmissionOut]
    next_cursor: str | None
