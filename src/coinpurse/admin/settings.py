"""Operators' rules: which adjustments need a second admin (in the configured currencies)."""

from __future__ import annotations

from pydantic import Field

from coinpurse.ledger.settings import LedgerSettings


class AdminSettings(LedgerSettings):
    # Adjustments above this amount (minor units) wait for a second admin's approval.
    adjustment_approval_above: int = Field(default=100_000, ge=0)
