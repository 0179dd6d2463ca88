"""Operators' rules: which adjustments need a second admin."""

from __future__ import annotations

from pydantic import Field

from coinpurse.core.settings import CoreSettings


class AdminSettings(CoreSettings):
    # Adjustments above this amount (minor units) wait for a second admin's approval.
    adjustment_approval_above: int = Field(default=100_000, ge=0)
