"""Request and response shapes of the admin API: validation, the OpenAPI document and the
answers all come from these models (``SomeOut.from_domain(obj)`` or ``model_validate``)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StrictInt, StringConstraints

from coinpurse.admin import model as m
from coinpurse.auth.keys import SERVICE_RE
from coinpurse.auth.model import NewKey, RotatedKey, ServiceKey
from coinpurse.core import cursor
from coinpurse.core.audit import AuditEntry
from coinpurse.core.types import USER_ID_RE, Amount, StrictModel, Timestamp, clean_text
from coinpurse.gifts.schemas import GiftOut
from coinpurse.wallets.schemas import PostingOut

Reason = Annotated[str, StringConstraints(min_length=3, max_length=500), clean_text]

# --- requests -------------------------------------------------------------------------------


class KeyIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"service": "games", "scopes": ["wallet:read", "wallet:credit:points"]}
    ]})

    service: Annotated[str, StringConstraints(pattern=SERVICE_RE.pattern)]
    scopes: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        min_length=1, max_length=50, examples=[["wallet:read", "wallet:credit:points"]])


class RotateIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"grace_s": 86400}
    ]})

    grace_s: Annotated[StrictInt, Field(ge=0, le=30 * 86_400)] | None = Field(
        default=None, description="How long the old key keeps working; default "
        "COINPURSE_KEY_ROTATION_GRACE_S.")


class AdjustmentIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"user_id": "alice",
         "currency": "points",
         "amount": 500,
         "direction": "credit",
         "reason": "Compensation for ticket 4411"}
    ]})

    user_id: Annotated[str, StringConstraints(pattern=USER_ID_RE)]
    currency: Annotated[str, StringConstraints(max_length=16)]
    amount: Amount
    direction: Literal["credit", "debit"]
    reason: Reason


class AdjustmentDecisionIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"note": "Checked with support"}
    ]})

    note: Annotated[str, StringConstraints(max_length=500), clean_text] | None = None


class ReverseIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"reason": "Credited twice by mistake"}
    ]})

    reason: Reason


# --- answers --------------------------------------------------------------------------------


class AdminBalanceOut(BaseModel):
    balance: int
    held: int
    available: int
    bonus: int | None = Field(default=None, description="A user's wallet (user:<id>) only: "
                              "the bonus wallet; absent for any other account.")


class AdminAccountOut(BaseModel):
    address: str
    balances: dict[str, AdminBalanceOut]


class Out(BaseModel):
    """An answer, read from the domain's objects; dumped with ``answer()``."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    def answer(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class AdminTransactionOut(Out):
    id: str
    kind: str
    description: str
    reference_id: str
    service: str | None
    initiator: str
    internal_notes: str | None
    metadata: dict[str, Any]
    postings: list[PostingOut]
    amounts: dict[str, int] = Field(description="Sum of the postings per currency.")
    created_at: Timestamp


class SummaryRow(Out):
    kind: str
    currency: str
    count: int
    total: int


class TransactionSearchOut(Out):
    data: list[AdminTransactionOut]
    summary: list[SummaryRow] = Field(description="For everything the filter matches.")
    next_cursor: str | None

    @classmethod
    def from_domain(cls, found: m.TransactionSearch) -> TransactionSearchOut:
        return cls.model_validate({
            "data": found.data, "summary": found.summary,
            "next_cursor": cursor.encode_text(found.next_id) if found.next_id else None,
        }, from_attributes=True)


class LedgerEntryOut(Out):
    model_config = ConfigDict(coerce_numbers_to_str=True)  # the entry's BIGINT id

    id: str
    transaction_id: str
    address: str
    currency: str
    amount: int
    balance_after: int
    kind: str
    description: str
    reference_id: str
    service: str | None
    initiator: str
    internal_notes: str | None
    created_at: Timestamp


class LedgerTotalOut(Out):
    kind: str
    currency: str
    in_: int = Field(alias="in")
    out: int
    entries: int


class UserLedgerOut(Out):
    user_id: str
    data: list[LedgerEntryOut]
    totals: list[LedgerTotalOut]
    next_cursor: str | None

    @classmethod
    def from_domain(cls, ledger: m.UserLedger) -> UserLedgerOut:
        return cls.model_validate({
            "user_id": ledger.user_id, "data": ledger.data, "totals": ledger.totals,
            "next_cursor": cursor.encode(ledger.next_id) if ledger.next_id is not None
            else None,
        }, from_attributes=True)


class ServiceStatsOut(Out):
    issued: int = Field(description="Paid out of the service's account.")
    collected: int = Field(description="Paid into the service's account.")
    balance: int


class CurrencyStatsOut(Out):
    in_user_wallets: int
    held: int
    services: dict[str, ServiceStatsOut]
    volume_24h: dict[str, int] = Field(description="Amount moved per transaction kind.")
    volume_7d: dict[str, int]
    count_24h: dict[str, int] = Field(description="Transactions per kind.")
    count_7d: dict[str, int]


class StatsOut(Out):
    generated_at: Timestamp
    currencies: dict[str, CurrencyStatsOut]
    users_with_wallet: int


class DailyVolumeOut(Out):
    date: str = Field(description="UTC day, YYYY-MM-DD.")
    currency: str
    kind: str = Field(description="Transaction kind: topup, withdrawal, gift, credit, ...")
    count: int
    amount: int = Field(description="Sum of the transactions' amounts, in minor units.")


class DailyFeesOut(Out):
    date: str
    currency: str
    amount: int = Field(description="Paid into the platform fee account that day.")


class DailyOut(Out):
    days: list[str] = Field(description="Every UTC day of the range, oldest first.")
    volume: list[DailyVolumeOut] = Field(description="Only days and kinds with activity.")
    fees: list[DailyFeesOut]
    fee_address: str


class PendingOut(Out):
    withdrawals: int
    kyc_submissions: int
    adjustments: int


class AuditEntryOut(Out):
    model_config = ConfigDict(coerce_numbers_to_str=True)  # the entry's BIGINT id

    id: str
    at: Timestamp
    actor: str
    actor_role: str | None
    action: str
    target: str | None
    details: dict[str, Any]
    ip: str | None


class AuditPage(Out):
    data: list[AuditEntryOut]
    next_cursor: str | None

    @classmethod
    def from_domain(cls, entries: list[AuditEntry], next_id: int | None) -> AuditPage:
        return cls.model_validate({
            "data": entries, "next_cursor": cursor.encode(next_id) if next_id else None})


class AdminGiftOut(GiftOut):
    """A gift as the report lists it (the gifts API's shape)."""

    model_config = ConfigDict(from_attributes=True)

    created_at: Timestamp  # type: ignore[assignment]


class GiftTotalsOut(Out):
    """Only the field the totals are grouped by is present of the last three."""

    currency: str
    count: int
    amount: int
    receiver_amount: int
    agency_commission: int
    platform_fee: int
    gift_type: str | None = None
    to_user_id: str | None = None
    agency_id: str | None = None

    @classmethod
    def from_domain(cls, total: m.GiftTotal) -> GiftTotalsOut:
        return cls.model_validate({
            total.by: total.key, "currency": total.currency, "count": total.count,
            "amount": total.amount, "receiver_amount": total.receiver_amount,
            "agency_commission": total.agency_commission, "platform_fee": total.platform_fee})


class GiftReportOut(Out):
    data: list[AdminGiftOut]
    totals_by_gift_type: list[GiftTotalsOut]
    totals_by_receiver: list[GiftTotalsOut]
    totals_by_agency: list[GiftTotalsOut]
    next_cursor: str | None

    @classmethod
    def from_domain(cls, report: m.GiftReport) -> GiftReportOut:
        def totals(found: list[m.GiftTotal]) -> list[GiftTotalsOut]:
            return [GiftTotalsOut.from_domain(t) for t in found]

        return cls(
            data=[AdminGiftOut.model_validate(g, from_attributes=True) for g in report.data],
            totals_by_gift_type=totals(report.totals_by_gift_type),
            totals_by_receiver=totals(report.totals_by_receiver),
            totals_by_agency=totals(report.totals_by_agency),
            next_cursor=cursor.encode_text(report.next_id) if report.next_id else None)

    def answer(self) -> dict[str, Any]:
        # Unset: the grouping fields a total does not have (no nulls in their place).
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# Service keys have always been written with ``+00:00`` (and the CLI prints the same).
KeyTime = Annotated[datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str)]


class KeyOut(Out):
    id: str
    service: str
    scopes: list[str]
    key_prefix: str
    created_at: KeyTime
    revoked_at: KeyTime | None
    expires_at: KeyTime | None = Field(description="Set on a rotated key: its grace period end.")

    @classmethod
    def from_domain(cls, key: ServiceKey) -> KeyOut:
        return cls.model_validate(key, from_attributes=True)


class KeyList(Out):
    data: list[KeyOut]


class KeyCreatedOut(KeyOut):
    key: str = Field(description="The secret; shown in this answer only.")

    @classmethod
    def of(cls, new: NewKey) -> KeyCreatedOut:
        return cls.model_validate({**asdict(new.key), "key": new.secret})


class KeyRotatedOut(KeyCreatedOut):
    previous: KeyOut

    @classmethod
    def of_rotation(cls, rotated: RotatedKey) -> KeyRotatedOut:
        return cls.model_validate({**asdict(rotated.new.key), "key": rotated.new.secret,
                                   "previous": asdict(rotated.previous)})


class AdjustmentOut(Out):
    id: str
    user_id: str
    currency: str
    amount: int
    direction: str
    reason: str
    status: str = Field(description="pending, approving, applied, rejected or failed.")
    requested_by: str
    decided_by: str | None
    decision_note: str | None
    transaction_id: str | None
    created_at: Timestamp
    decided_at: Timestamp | None


class AdjustmentList(Out):
    data: list[AdjustmentOut]
