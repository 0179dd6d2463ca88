"""Top-up packages and per-amount rates, parsed from ``COINPURSE_TOPUP_PACKAGES`` and
``COINPURSE_TOPUP_RATES``. Prices are plain amounts in an ISO currency's minor units: the
price currency (usd, inr) need not be a ledger currency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coinpurse.core.settings import parse_int
from coinpurse.core.types import AMOUNT_MAX

PACKAGE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")
PRICE_CURRENCY_RE = re.compile(r"^[a-z]{3}$")
PRICE_MAX = 10**12


@dataclass(frozen=True, slots=True)
class Package:
    id: str
    currency: str
    amount: int
    bonus: int
    price: int
    price_currency: str

    @property
    def total(self) -> int:
        return self.amount + self.bonus


@dataclass(frozen=True, slots=True)
class Rate:
    """``per`` units of ``currency`` cost ``price`` minor units of ``price_currency``."""

    currency: str
    per: int
    price: int
    price_currency: str


def parse_packages(raw: str, currencies: list[str]) -> dict[str, Package]:
    """``id:amount[+bonus|+pct%]:price:price_currency[:currency]``, comma-separated; the
    currency defaults to the first configured one, e.g.
    ``coins_100:100:999:usd:coins,coins_1000:1000+20%:7999:usd:coins``."""
    packages: dict[str, Package] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        bits = part.split(":")
        if len(bits) not in (4, 5) or not PACKAGE_ID_RE.match(bits[0]):
            raise ValueError(f"{part!r} is not id:amount[+bonus]:price:price_currency"
                             "[:currency]")
        pid, credit, price, price_currency = bits[:4]
        currency = bits[4] if len(bits) == 5 else currencies[0]
        if currency not in currencies:
            raise ValueError(f"package {pid!r}: {currency!r} is not a configured currency")
        if not PRICE_CURRENCY_RE.match(price_currency):
            raise ValueError(f"package {pid!r}: the price currency must be an ISO code "
                             "such as usd")
        amount_text, _, bonus_text = credit.partition("+")
        amount = parse_int(amount_text, f"package {pid!r}: the amount")
        bonus = 0
        if bonus_text.endswith("%"):
            bonus = amount * parse_int(bonus_text[:-1], f"package {pid!r}: the bonus %", 0,
                                  1000) // 100
        elif bonus_text:
            bonus = parse_int(bonus_text, f"package {pid!r}: the bonus", 0)
        if amount + bonus > AMOUNT_MAX:
            raise ValueError(f"package {pid!r}: amount + bonus is too large")
        if pid in packages:
            raise ValueError(f"package {pid!r} is listed twice")
        packages[pid] = Package(pid, currency, amount, bonus,
                                parse_int(price, f"package {pid!r}: the price", 1, PRICE_MAX),
                                price_currency)
    return packages


def parse_rates(raw: str, currencies: list[str]) -> dict[str, Rate]:
    """``currency:per:price:price_currency``, e.g. ``coins:100:99:usd`` (100 coins cost
    0.99 USD). Empty: top-ups by amount are not allowed, only packages."""
    rates: dict[str, Rate] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        bits = part.split(":")
        if len(bits) != 4 or bits[0] not in currencies or not PRICE_CURRENCY_RE.match(bits[3]):
            raise ValueError(f"{part!r} is not currency:per:price:price_currency with a "
                             "configured currency, e.g. coins:100:99:usd")
        if bits[0] in rates:
            raise ValueError(f"rate for {bits[0]!r} is listed twice")
        rates[bits[0]] = Rate(bits[0], parse_int(bits[1], "per"), parse_int(bits[2], "price", 1,
                                                                   PRICE_MAX), bits[3])
    return rates
