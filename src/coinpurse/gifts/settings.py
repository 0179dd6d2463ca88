"""Gifts: the catalog, the currencies that may be gifted, and the commission split."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import Field, PrivateAttr, model_validator

from coinpurse.ledger.settings import Currency, LedgerSettings, currency_subset

GIFT_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
BPS_MAX = 10_000


@dataclass(frozen=True, slots=True)
class GiftType:
    code: str
    price: int
    currency: str


def parse_gift_catalog(raw: str, currencies: dict[str, Currency],
                       default_currency: str) -> dict[str, GiftType]:
    """Parse ``type:price[:currency]`` items such as ``rose:10:diamonds,car:1000``."""
    catalog: dict[str, GiftType] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        bits = part.split(":")
        if len(bits) not in (2, 3) or not GIFT_CODE_RE.match(bits[0]) or not bits[1].isdigit():
            raise ValueError(f"{part!r} is not type:price[:currency], e.g. rose:10:diamonds")
        currency = bits[2] if len(bits) == 3 else default_currency
        if currency not in currencies:
            raise ValueError(f"gift {bits[0]!r} is priced in {currency!r}, not a configured "
                             "currency")
        price = int(bits[1])
        if not 1 <= price <= 2**63 - 1:
            raise ValueError(f"gift {bits[0]!r} needs a price from 1 to 2^63-1")
        catalog[bits[0]] = GiftType(bits[0], price, currency)
    return catalog


class GiftSettings(LedgerSettings):
    # A catalog of type:price[:currency] (currency defaults to the first giftable one).
    gift_catalog: str = "rose:10,heart:50,rocket:500,car:1000"
    gift_currencies: str = "*"
    gift_platform_bps: int = Field(default=2000, ge=0, le=BPS_MAX)
    gift_agency_bps: int = Field(default=1000, ge=0, le=BPS_MAX)
    gift_allow_amount: bool = True
    platform_fee_address: str = "platform:fees"

    _giftable: frozenset[str] = PrivateAttr(default=frozenset())
    _gift_types: dict[str, GiftType] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _parse_gifts(self) -> GiftSettings:
        self._giftable = currency_subset(self.gift_currencies, self.currencies,
                                         "COINPURSE_GIFT_CURRENCIES")
        default = next((c for c in self.currencies if c in self._giftable),
                       next(iter(self.currencies)))
        try:
            self._gift_types = parse_gift_catalog(self.gift_catalog, self.currencies, default)
        except ValueError as exc:
            raise ValueError(f"COINPURSE_GIFT_CATALOG: {exc}") from None
        if self.gift_platform_bps + self.gift_agency_bps > BPS_MAX:
            raise ValueError("COINPURSE_GIFT_PLATFORM_BPS + COINPURSE_GIFT_AGENCY_BPS must be "
                             f"at most {BPS_MAX} (100%)")
        return self

    @property
    def giftable(self) -> frozenset[str]:
        return self._giftable

    @property
    def gift_types(self) -> dict[str, GiftType]:
        return self._gift_types
