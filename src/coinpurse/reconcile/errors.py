"""The reconciliation domain's refusals."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError


class ReconciliationRunning(CoinpurseError):
    code = "reconciliation_running"
    status = 409
    title = "A reconciliation of this kind is running"
