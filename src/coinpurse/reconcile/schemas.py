"""Request and response shapes of the reconciliation API (``/admin/v1/reconciliations``)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coinpurse.core import cursor
from coinpurse.core.clock import utcnow
from coinpurse.core.types import StrictModel, Timestamp
from coinpurse.reconcile.model import CHECKS, Discrepancy, Run, RunDetail

PERIOD_DAYS_MAX = 92


class ReconciliationIn(StrictModel):
    kind: Literal["ledger", "chain", "provider"] = Field(
        default="ledger", description="`ledger`: the books (every check, the chain "
        "included); `chain`: the hash chain only (like `coinpurse verify`); `provider`: a "
        "provider's statement against the paid orders.")
    mode: Literal["incremental", "full"] = Field(
        default="incremental", description="`incremental` checks what changed since the "
        "last clean run of this kind; `full` checks everything. Not for `provider`.")
    provider: Literal["stripe", "razorpay"] | None = Field(
        default=None, description="Required for `provider`.")
    period_from: date | None = Field(default=None, description="`provider`: the first UTC "
                                     "day of the period (default: yesterday).")
    period_to: date | None = Field(default=None, description="`provider`: the last UTC day "
                                   "of the period, included (default: `period_from`).")

    @model_validator(mode="after")
    def _consistent(self) -> ReconciliationIn:
        if self.kind == "provider":
            if self.provider is None:
                raise ValueError("a provider reconciliation needs provider: stripe or razorpay")
            first = self.period_from or (utcnow().date() - timedelta(days=1))
            last = self.period_to or first
            check_period(first, last)
            self.period_from, self.period_to = first, last
        elif self.provider is not None or self.period_from or self.period_to:
            raise ValueError("provider and period_from/period_to are for kind provider only")
        return self


def check_period(first: date, last: date) -> None:
    if last < first:
        raise ValueError("period_to is before period_from")
    if (last - first).days + 1 > PERIOD_DAYS_MAX:
        raise ValueError(f"a period is at most {PERIOD_DAYS_MAX} days")
    if first > utcnow().date():
        raise ValueError("the period starts in the future")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    def answer(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class DiscrepancyOut(Out):
    check: str = Field(description="What failed; see the list in the API description.",
                       examples=["balance_not_sum_of_entries"])
    subject_type: str = Field(examples=["account"], description="`currency`, `account`, "
                              "`entry`, `transaction`, `seal`, `payment_order`, `withdrawal`, "
                              "`provider_payment` or `ledger`.")
    subject: str = Field(examples=["user:alice (points)"])
    detail: str
    expected: Any = None
    actual: Any = None

    @classmethod
    def of(cls, d: Discrepancy) -> DiscrepancyOut:
        return cls(check=d.check, subject_type=d.subject_type, subject=d.subject,
                   detail=d.detail, expected=d.expected, actual=d.actual)


class ReconciliationOut(Out):
    id: str
    kind: str = Field(examples=["ledger"])
    mode: str = Field(examples=["incremental"], description="`incremental`, `full`, "
                      "`from_sequence` or `period` (provider statements).")
    status: str = Field(examples=["passed"], description="`running`, `passed`, `failed` "
                        "(discrepancies found) or `error` (the run could not finish).")
    trigger: str = Field(examples=["schedule"], description="`schedule`, `cli` or "
                         "`admin:<id>`.")
    scheduled_for: str | None = Field(description="The UTC day of a scheduled run.")
    provider: str | None
    scope: dict[str, Any] = Field(description="What was checked: `since` (where the last "
                                  "clean run stopped), `through` (the chain's head seen), "
                                  "the period of a provider run.")
    counts: dict[str, int] = Field(description="Rows checked, per kind of row.")
    discrepancy_count: int
    error: str | None
    started_at: Timestamp
    heartbeat_at: Timestamp
    finished_at: Timestamp | None

    @classmethod
    def of(cls, run: Run) -> ReconciliationOut:
        return cls.model_validate(run)


class ReconciliationDetailOut(ReconciliationOut):
    discrepancies: list[DiscrepancyOut] = Field(description="In the order found; at most "
                                                "500 here (the count is `discrepancy_count`).")

    @classmethod
    def detail(cls, found: RunDetail) -> ReconciliationDetailOut:
        return cls(**ReconciliationOut.of(found.run).model_dump(),
                   discrepancies=[DiscrepancyOut.of(d) for d in found.discrepancies])


class ReconciliationPage(Out):
    data: list[ReconciliationOut]
    next_cursor: str | None

    @classmethod
    def of(cls, runs: list[Run], next_id: str | None) -> ReconciliationPage:
        return cls(data=[ReconciliationOut.of(r) for r in runs],
                   next_cursor=cursor.encode_text(next_id) if next_id else None)


def checks_table() -> str:
    """The checks, for the API description."""
    return "\n".join(f"- `{name}`: {what}" for name, what in CHECKS.items())
