"""Response models of the admin API (for the OpenAPI document; routes answer with JSON)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from coinpurse.gifts.schemas import GiftOut
from coinpurse.wallets.schemas import PostingOut


class AdminTransactionOut(BaseModel):
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
    created_at: str


class SummaryRow(BaseModel):
    kind: str
    currency: str
    count: int
    total: int


class TransactionSearchOut(BaseModel):
    data: list[AdminTransactionOut]
    summary: list[SummaryRow] = Field(description="For everything the filter matches.")
    next_cursor: str | None


class LedgerEntryOut(BaseModel):
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
    created_at: str


class LedgerTotalOut(BaseModel):
    kind: str
    currency: str
    in_: int = Field(alias="in")
    out: int
    entries: int


class UserLedgerOut(BaseModel):
    user_id: str
    data: list[LedgerEntryOut]
    totals: list[LedgerTotalOut]
    next_cursor: str | None


class ServiceStatsOut(BaseModel):
    issued: int = Field(description="Paid out of the service's account.")
    collected: int = Field(description="Paid into the service's account.")
    balance: int


class CurrencyStatsOut(BaseModel):
    in_user_wallets: int
    held: int
    services: dict[str, ServiceStatsOut]
    volume_24h: dict[str, int] = Field(description="Amount moved per transaction kind.")
    volume_7d: dict[str, int]
    count_24h: dict[str, int] = Field(description="Transactions per kind.")
    count_7d: dict[str, int]


class StatsOut(BaseModel):
    generated_at: str
    currencies: dict[str, CurrencyStatsOut]
    users_with_wallet: int


class AuditEntryOut(BaseModel):
    id: str
    at: str
    actor: str
    actor_role: str | None
    action: str
    target: str | None
    details: dict[str, Any]
    ip: str | None


class AuditPage(BaseModel):
    data: list[AuditEntryOut]
    next_cursor: str | None


class GiftTotalsOut(BaseModel):
    currency: str
    count: int
    amount: int
    receiver_amount: int
    agency_commission: int
    platform_fee: int
    gift_type: str | None = None
    to_user_id: str | None = None
    agency_id: str | None = None


class GiftReportOut(BaseModel):
    data: list[GiftOut]
    totals_by_gift_type: list[GiftTotalsOut]
    totals_by_receiver: list[GiftTotalsOut]
    totals_by_agency: list[GiftTotalsOut]
    next_cursor: str | None


class KeyOut(BaseModel):
    id: str
    service: str
    scopes: list[str]
    key_prefix: str
    created_at: str
    revoked_at: str | None
    expires_at: str | None = Field(description="Set on a rotated key: its grace period end.")


class KeyList(BaseModel):
    data: list[KeyOut]


class KeyCreatedOut(KeyOut):
    key: str = Field(description="The secret; shown in this answer only.")


class KeyRotatedOut(KeyCreatedOut):
    previous: KeyOut


class AdjustmentOut(BaseModel):
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
    created_at: str
    decided_at: str | None


class AdjustmentList(BaseModel):
    data: list[AdjustmentOut]
