"""KYC tiers and their limits, parsed from ``COINPURSE_KYC_TIERS`` (JSON).

Kept free of settings and database imports so that ``config.py`` can validate the variable
at start-up and every other module can use the parsed value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

LIMIT_NAMES = ("max_balance", "topup_max", "topup_daily", "withdraw_daily", "withdraw_monthly")
FIELDS = ("full_name", "date_of_birth", "country", "id_document_ref", "selfie_ref")
TIER_MAX = 9

DEFAULT_TIERS = json.dumps({
    "0": {"requires": [], "withdrawals": False,
          "limits": {"*": {"topup_max": 100_000, "topup_daily": 100_000}}},
    "1": {"requires": ["full_name", "date_of_birth", "country"], "withdrawals": True,
          "limits": {"*": {"topup_max": 1_000_000, "topup_daily": 2_000_000,
                           "withdraw_daily": 100_000, "withdraw_monthly": 1_000_000}}},
    "2": {"requires": list(FIELDS), "withdrawals": True,
          "limits": {"*": {"withdraw_daily": 10_000_000, "withdraw_monthly": 100_000_000}}},
}, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Limits:
    """Amounts in the currency's minor units; ``None`` means no limit."""

    max_balance: int | None = None
    topup_max: int | None = None
    topup_daily: int | None = None
    withdraw_daily: int | None = None
    withdraw_monthly: int | None = None

    def get(self, name: str) -> int | None:
        value: int | None = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class Tier:
    level: int
    requires: tuple[str, ...]
    withdrawals: bool
    limits: dict[str, Limits] = field(default_factory=dict)  # currency or "*"

    def limits_for(self, currency: str) -> Limits:
        return self.limits.get(currency) or self.limits.get("*") or Limits()

    def limits_table(self, currencies: Iterable[str]) -> dict[str, dict[str, int | None]]:
        """Every limit of every listed currency (``None``: no limit), as users are shown."""
        return {c: {n: self.limits_for(c).get(n) for n in LIMIT_NAMES} for c in currencies}


def parse_tiers(raw: str, currencies: set[str]) -> dict[int, Tier]:
    """Parse and check the tiers; raise ValueError naming what is wrong."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "0" not in data:
        raise ValueError('must be a JSON object of tiers keyed "0", "1", ... with tier "0"')
    tiers: dict[int, Tier] = {}
    for key, spec in data.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) <= TIER_MAX):
            raise ValueError(f"tier {key!r} must be a number from 0 to {TIER_MAX}")
        if not isinstance(spec, dict) or set(spec) - {"requires", "withdrawals", "limits"}:
            raise ValueError(f"tier {key}: only requires, withdrawals and limits are allowed")
        requires = spec.get("requires", [])
        if not isinstance(requires, list) or any(r not in FIELDS for r in requires):
            raise ValueError(f"tier {key}: requires lists fields of {', '.join(FIELDS)}")
        withdrawals = spec.get("withdrawals", False)
        if not isinstance(withdrawals, bool):
            raise ValueError(f"tier {key}: withdrawals must be true or false")
        tiers[int(key)] = Tier(int(key), tuple(requires), withdrawals,
                               _parse_limits(key, spec.get("limits", {}), currencies))
    if sorted(tiers) != list(range(len(tiers))):
        raise ValueError("tiers must be numbered 0, 1, 2, ... without gaps")
    return tiers


def _parse_limits(tier: str, raw: Any, currencies: set[str]) -> dict[str, Limits]:
    if not isinstance(raw, dict):
        raise ValueError(f"tier {tier}: limits must map a currency (or *) to limits")
    out: dict[str, Limits] = {}
    for currency, values in raw.items():
        if currency != "*" and currency not in currencies:
            raise ValueError(f"tier {tier}: {currency!r} is not a configured currency")
        if not isinstance(values, dict) or set(values) - set(LIMIT_NAMES):
            raise ValueError(f"tier {tier}: limits are {', '.join(LIMIT_NAMES)}")
        for name, value in values.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value <= 2**63 - 1):
                raise ValueError(f"tier {tier}: {name} must be a non-negative integer or null")
        out[currency] = Limits(**values)
    return out
