"""Withdrawals: which currencies, between which amounts, and how long a decision may wait."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, PrivateAttr, model_validator

from coinpurse.core.settings import parse_int
from coinpurse.ledger.settings import LedgerSettings


@dataclass(frozen=True, slots=True)
class Withdrawable:
    """The smallest and largest amount of one withdrawal (``None``: no maximum)."""

    min_amount: int
    max_amount: int | None


def parse_withdrawable(raw: str, currencies: list[str]) -> dict[str, Withdrawable]:
    """``code[:min[:max]]``, e.g. ``diamonds:100:1000000``."""
    out: dict[str, Withdrawable] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        bits = part.split(":")
        if len(bits) > 3 or bits[0] not in currencies:
            raise ValueError(f"{part!r} is not code[:min[:max]] with a configured currency")
        low = parse_int(bits[1], "the minimum") if len(bits) > 1 and bits[1] else 1
        high = parse_int(bits[2], "the maximum") if len(bits) > 2 and bits[2] else None
        if high is not None and high < low:
            raise ValueError(f"{bits[0]}: the maximum is below the minimum")
        out[bits[0]] = Withdrawable(low, high)
    return out


class WithdrawalSettings(LedgerSettings):
    withdrawal_currencies: str = ""  # code[:min[:max]]; empty: no withdrawals
    withdrawal_hold_ttl_s: int = Field(default=30 * 86_400, ge=3600, le=365 * 86_400)
    payouts_address: str = "platform:payouts"

    _withdrawable: dict[str, Withdrawable] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _parse_withdrawals(self) -> WithdrawalSettings:
        try:
            self._withdrawable = parse_withdrawable(self.withdrawal_currencies,
                                                    list(self.currencies))
        except ValueError as exc:
            raise ValueError(f"COINPURSE_WITHDRAWAL_CURRENCIES: {exc}") from None
        return self

    @property
    def withdrawable(self) -> dict[str, Withdrawable]:
        return self._withdrawable
