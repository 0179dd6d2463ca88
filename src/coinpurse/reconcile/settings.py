"""When the daily reconciliation runs, and how the ledger is sealed."""

from __future__ import annotations

import re
from datetime import time

from pydantic import Field, PrivateAttr, model_validator

from coinpurse.core.settings import CoreSettings

_AT_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_at(raw: str) -> time | None:
    """``HH:MM`` (UTC) or ``never``."""
    text = raw.strip().lower()
    if text == "never":
        return None
    match = _AT_RE.match(text)
    if match is None:
        raise ValueError(f"must be HH:MM (UTC, e.g. 02:00) or never, not {raw!r}")
    return time(int(match.group(1)), int(match.group(2)))


class ReconcileSettings(CoreSettings):
    # The daily run, in UTC; "never" turns the schedule off (runs on demand still work).
    reconcile_at: str = "02:00"
    # The scheduled run checks everything when the last clean full run is older than this
    # (0: the schedule is always incremental; `coinpurse reconcile --full` on demand).
    reconcile_full_every_days: int = Field(default=7, ge=0, le=366)
    # How often this process seals newly committed transactions (0: not in this process).
    seal_interval_s: float = Field(default=1.0, ge=0, le=3600)
    # A transaction still unsealed this long after it was created is reported as a break:
    # it has no transaction.posted event, so it was not written by the ledger.
    seal_lag_s: int = Field(default=300, ge=10, le=7 * 86_400)

    _reconcile_time: time | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _parse_reconcile(self) -> ReconcileSettings:
        try:
            self._reconcile_time = parse_at(self.reconcile_at)
        except ValueError as exc:
            raise ValueError(f"COINPURSE_RECONCILE_AT: {exc}") from None
        return self

    @property
    def reconcile_time(self) -> time | None:
        return self._reconcile_time
