"""Bonuses: where promotion money comes from, in which order a spend takes cash and bonus,
and what a withdrawal does while a bonus is being wagered; per currency."""

from __future__ import annotations

import re

from pydantic import PrivateAttr, model_validator

from coinpurse.core.types import ADDRESS_RE
from coinpurse.ledger.settings import Currency, LedgerSettings

SPEND_ORDERS = ("cash_first", "bonus_first")
WITHDRAWAL_POLICIES = ("forfeit", "block")


def parse_per_currency(raw: str, choices: tuple[str, ...], currencies: dict[str, Currency],
                       default: str) -> dict[str, str]:
    """``choice`` for every currency, or ``choice,currency:choice,...`` (the bare choice is
    the default of the currencies not listed)."""
    fallback, chosen = default, {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        currency, sep, choice = part.rpartition(":")
        if choice not in choices:
            raise ValueError(f"{part!r}: choose one of {', '.join(choices)}, or "
                             f"currency:{choices[0]}")
        if not sep:
            fallback = choice
        elif currency not in currencies:
            raise ValueError(f"{currency!r} is not a configured currency")
        else:
            chosen[currency] = choice
    return {c: chosen.get(c, fallback) for c in currencies}


class BonusSettings(LedgerSettings):
    # Where bonus money comes from and goes back to (also the top-up packages' bonus source,
    # see PaymentSettings; one variable, COINPURSE_PROMOTIONS_ADDRESS).
    promotions_address: str = "service:promotions"
    # cash_first or bonus_first, for all currencies or per currency (points:bonus_first).
    bonus_spend_order: str = "cash_first"
    # forfeit (active bonuses are forfeited, the withdrawal proceeds) or block (422
    # wagering_incomplete), for all currencies or per currency.
    bonus_withdrawal_policy: str = "forfeit"

    _spend_order: dict[str, str] = PrivateAttr(default_factory=dict)
    _withdrawal_policy: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _parse_bonuses(self) -> BonusSettings:
        if not re.match(ADDRESS_RE, self.promotions_address) \
                or self.promotions_address.startswith("user:"):
            raise ValueError("COINPURSE_PROMOTIONS_ADDRESS must be an account address that is "
                             "not a user's wallet, e.g. service:promotions")
        if not self.may_go_negative(self.promotions_address):
            raise ValueError("COINPURSE_PROMOTIONS_ADDRESS must be an account that may go "
                             "below zero (COINPURSE_OVERDRAFT_ADDRESSES): promotions pay "
                             "out money that enters the system")
        try:
            self._spend_order = parse_per_currency(self.bonus_spend_order, SPEND_ORDERS,
                                                   self.currencies, "cash_first")
        except ValueError as exc:
            raise ValueError(f"COINPURSE_BONUS_SPEND_ORDER: {exc}") from None
        try:
            self._withdrawal_policy = parse_per_currency(
                self.bonus_withdrawal_policy, WITHDRAWAL_POLICIES, self.currencies, "forfeit")
        except ValueError as exc:
            raise ValueError(f"COINPURSE_BONUS_WITHDRAWAL_POLICY: {exc}") from None
        return self

    def spend_order(self, currency: str) -> str:
        return self._spend_order.get(currency, "cash_first")

    def withdrawal_policy(self, currency: str) -> str:
        return self._withdrawal_policy.get(currency, "forfeit")
