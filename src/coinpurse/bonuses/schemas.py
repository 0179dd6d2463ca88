"""Bonuses' requests and answers: one definition each, for validation, the OpenAPI document
and the JSON sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from coinpurse.bonuses.model import BP, Bonus, Promotion, Referral
from coinpurse.core.types import (
    Amount,
    CurrencyCode,
    Description,
    InternalNotes,
    ReferenceId,
    StrictModel,
    Timestamp,
    UserId,
    UtcDateTime,
    clean_text,
)

CATEGORY_RE = r"^[a-z][a-z0-9_]{0,31}$"
CODE_RE = r"^[A-Za-z0-9_-]{3,32}$"
CONTRIBUTIONS_MAX = 64
MULTIPLIER_MAX = 1000
EXPIRES_IN_DAYS_MAX = 3650

Code = Annotated[str, StringConstraints(pattern=CODE_RE),
                 Field(description="3 to 32 letters, digits, _ or -; case does not matter.",
                       examples=["WELCOME100"])]
Category = Annotated[str, StringConstraints(pattern=CATEGORY_RE),
                     Field(description="An activity category, e.g. slots, table, sports.",
                           examples=["slots"])]
BasisPoints = Annotated[StrictInt, Field(ge=0, le=BP, description="10000 = 100%.")]
Kind = Literal["deposit_match", "signup", "referral", "manual"]
Status = Literal["active", "completed", "forfeited", "expired"]
Multiplier = Annotated[StrictInt, Field(ge=0, le=MULTIPLIER_MAX)]
Days = Annotated[StrictInt, Field(ge=1, le=EXPIRES_IN_DAYS_MAX)]
UserLimit = Annotated[StrictInt, Field(ge=1, le=1_000_000)]
Contributions = Annotated[dict[Category, BasisPoints], Field(max_length=CONTRIBUTIONS_MAX)]


class _PromotionTerms(StrictModel):
    """The fields a promotion's creation and its edits share."""

    description: Description | None = None
    percent_bp: Annotated[StrictInt, Field(ge=1, le=10 * BP)] | None = Field(
        default=None, description="deposit_match: the bonus as a share of the deposit "
        "(10000 = 100%).")
    max_bonus: Amount | None = Field(default=None,
                                     description="deposit_match: the largest bonus.")
    amount: Amount | None = Field(default=None,
                                  description="signup, referral, manual: the bonus.")
    min_deposit: Amount | None = Field(
        default=None, description="deposit_match and referral: the smallest top-up that "
        "qualifies.")
    wagering_multiplier: Multiplier | None = Field(
        default=None, description="What must be wagered: the bonus times this (0: none, "
        "the bonus converts at once). Default 1.")
    contributions: Contributions | None = Field(
        default=None, description="How much of an activity counts as wagering, in basis "
        "points per category.", examples=[{"slots": 10000, "table": 1000}])
    default_contribution_bp: BasisPoints | None = Field(
        default=None, description="For a category not in contributions. Default 10000.")
    max_conversion: Amount | None = Field(
        default=None, description="At most this converts to cash when the wagering is met; "
        "the rest is forfeited. Default: all of it.")
    expires_in_days: Days | None = Field(
        default=None, description="A bonus not played through by then is forfeited by the "
        "worker (status expired). Default 30.")
    starts_at: UtcDateTime | None = None
    ends_at: UtcDateTime | None = None
    active: StrictBool | None = Field(
        default=None, description="Default true. Deactivating a promotion stops new grants; "
        "bonuses already granted go on.")
    automatic: StrictBool | None = Field(
        default=None, description="deposit_match: applies to every qualifying top-up, "
        "without a code.")
    claimable: StrictBool | None = Field(
        default=None, description="manual: users may claim the code with "
        "POST /api/v1/bonuses/claim.")
    per_user_limit: UserLimit | None = Field(
        default=None, description="How many bonuses of this promotion one user may get "
        "(default 1; null: no limit).")
    budget: Amount | None = Field(
        default=None, description="The most all its bonuses may add up to; once a grant "
        "would pass it, there is none.")


class PromotionIn(_PromotionTerms):
    code: Code
    kind: Kind
    currency: CurrencyCode
    description: Description

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "code": "WELCOME100", "kind": "deposit_match", "currency": "points",
        "description": "100% first deposit match", "percent_bp": 10000, "max_bonus": 500,
        "min_deposit": 100, "wagering_multiplier": 10, "automatic": True,
        "contributions": {"slots": 10000, "table": 1000}, "default_contribution_bp": 0,
        "max_conversion": 1000, "expires_in_days": 30, "per_user_limit": 1,
        "budget": 1000000}]})


class PromotionPatchIn(_PromotionTerms):
    """Only the fields sent change; null clears a limit (``max_bonus``, ``budget``, ...).
    Code, kind and currency never change. Bonuses already granted keep their terms."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"active": False}, {"ends_at": "2027-01-31T23:59:59Z", "budget": 2000000}]})


class PromotionOut(BaseModel):
    id: str
    code: str
    kind: str
    currency: str
    description: str
    percent_bp: int | None
    max_bonus: int | None
    amount: int | None
    min_deposit: int | None
    wagering_multiplier: int
    contributions: dict[str, int]
    default_contribution_bp: int
    max_conversion: int | None
    expires_in_days: int
    starts_at: Timestamp | None
    ends_at: Timestamp | None
    active: bool
    automatic: bool
    claimable: bool
    per_user_limit: int | None
    budget: int | None
    granted_total: int = Field(description="What its bonuses add up to so far.")
    granted_count: int
    budget_left: int | None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, p: Promotion) -> PromotionOut:
        return cls.model_validate({
            "id": p.id, "code": p.code, "kind": p.kind, "currency": p.currency,
            "description": p.description, "percent_bp": p.percent_bp,
            "max_bonus": p.max_bonus, "amount": p.amount, "min_deposit": p.min_deposit,
            "wagering_multiplier": p.wagering_multiplier,
            "contributions": dict(p.terms.contributions),
            "default_contribution_bp": p.terms.default_contribution_bp,
            "max_conversion": p.terms.max_conversion, "expires_in_days": p.expires_in_days,
            "starts_at": p.starts_at, "ends_at": p.ends_at, "active": p.active,
            "automatic": p.automatic, "claimable": p.claimable,
            "per_user_limit": p.per_user_limit, "budget": p.budget,
            "granted_total": p.granted_total, "granted_count": p.granted_count,
            "budget_left": max(p.budget - p.granted_total, 0) if p.budget is not None
            else None,
            "created_at": p.created_at, "updated_at": p.updated_at})


class PromotionPage(BaseModel):
    data: list[PromotionOut]
    next_cursor: str | None


class ProgressOut(BaseModel):
    wagered: int
    required: int
    left: int = Field(description="What is still to wager.")
    percent: float = Field(description="0 to 100.")
    expires_at: Timestamp


class BonusOut(BaseModel):
    id: str
    promotion_id: str
    promotion_code: str
    kind: str
    currency: str
    description: str
    granted: int
    remaining: int = Field(description="What is left of it in the bonus wallet.")
    status: str = Field(description="active, completed (converted), forfeited, expired")
    progress: ProgressOut
    max_conversion: int | None
    converted: int = Field(description="What it converted to cash.")
    forfeited: int = Field(description="What went back to the promotions account.")
    transaction_id: str = Field(description="The grant.")
    created_at: Timestamp
    expires_at: Timestamp
    closed_at: Timestamp | None

    @staticmethod
    def fields(x: Bonus) -> dict[str, Any]:
        return {
            "id": x.id, "promotion_id": x.promotion_id, "promotion_code": x.promotion_code,
            "kind": x.kind, "currency": x.currency, "description": x.description,
            "granted": x.granted, "remaining": x.remaining, "status": x.status,
            "progress": {"wagered": x.wagered, "required": x.wagering_required,
                         "left": x.left_to_wager, "percent": x.percent,
                         "expires_at": x.expires_at},
            "max_conversion": x.terms.max_conversion, "converted": x.converted,
            "forfeited": x.forfeited, "transaction_id": x.transaction_id,
            "created_at": x.created_at, "expires_at": x.expires_at, "closed_at": x.closed_at}

    @classmethod
    def of(cls, x: Bonus) -> BonusOut:
        return cls.model_validate(cls.fields(x))


class AdminBonusOut(BonusOut):
    user_id: str
    source: str = Field(description="Why it was granted: topup:<order>, referral:<referee>, "
                        "signup, manual:<id>, claim:<id>.")

    @classmethod
    def of(cls, x: Bonus) -> AdminBonusOut:
        return cls.model_validate({**BonusOut.fields(x), "user_id": x.user_id,
                                   "source": x.source})


class BonusPage(BaseModel):
    data: list[BonusOut]
    next_cursor: str | None


class AdminBonusPage(BaseModel):
    data: list[AdminBonusOut]
    next_cursor: str | None


class GrantIn(StrictModel):
    user_id: UserId
    promotion_code: Code
    amount: Amount | None = Field(default=None,
                                  description="Default: the promotion's amount.")
    reason: InternalNotes | None = Field(default=None, description="For operators.")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "user_id": "123", "promotion_code": "SORRY50", "reason": "outage on 2026-05-01"}]})


class ClaimIn(StrictModel):
    code: Code

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"code": "SPRING25"}]})


class ActivityIn(StrictModel):
    user_id: UserId
    currency: CurrencyCode
    amount: Amount
    category: Category
    reference_id: ReferenceId

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "user_id": "123", "currency": "points", "amount": 250, "category": "slots",
        "reference_id": "round_991"}]})


class ConversionOut(BaseModel):
    bonus_id: str
    converted: int = Field(description="Moved from the bonus wallet to the cash wallet.")
    forfeited: int = Field(description="Above max_conversion: back to promotions.")
    transaction_id: str | None


class ActivityOut(BaseModel):
    user_id: str
    currency: str
    amount: int
    category: str
    reference_id: str
    bonuses: list[BonusOut] = Field(description="The bonuses it counted toward, after it.")
    conversions: list[ConversionOut]

    @classmethod
    def of(cls, body: ActivityIn, touched: Sequence[Bonus],
           conversions: Sequence[dict[str, Any]]) -> ActivityOut:
        return cls.model_validate({
            "user_id": body.user_id, "currency": body.currency, "amount": body.amount,
            "category": body.category, "reference_id": body.reference_id,
            "bonuses": [BonusOut.fields(x) for x in touched], "conversions": conversions})


class ForfeitIn(StrictModel):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500), clean_text]

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "Duplicate account"}]})


class ReferralIn(StrictModel):
    referrer_user_id: UserId
    referee_user_id: UserId

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "referrer_user_id": "123", "referee_user_id": "456"}]})


class ReferralOut(BaseModel):
    referrer_user_id: str
    referee_user_id: str
    status: str = Field(description="pending, or rewarded once the referee's first "
                        "qualifying top-up paid both.")
    created_at: Timestamp
    rewarded_at: Timestamp | None
    order_id: str | None = Field(description="The top-up that paid the reward.")

    @classmethod
    def of(cls, r: Referral) -> ReferralOut:
        return cls.model_validate({
            "referrer_user_id": r.referrer_id, "referee_user_id": r.referee_id,
            "status": "rewarded" if r.rewarded_at is not None else "pending",
            "created_at": r.created_at, "rewarded_at": r.rewarded_at, "order_id": r.order_id})
