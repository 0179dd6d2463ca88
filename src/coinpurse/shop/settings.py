"""The shop's settings: the platform's fee, where it goes, what products may be priced in."""

from __future__ import annotations

import re

from pydantic import Field, PrivateAttr, model_validator

from coinpurse.core.types import ADDRESS_RE
from coinpurse.ledger.settings import LedgerSettings, currency_subset

BPS_MAX = 10_000
QUANTITY_LIMIT = 10_000  # the largest quantity any configuration allows per order


class ShopSettings(LedgerSettings):
    # The platform's share of each sale, in basis points, rounded down (500 = 5%).
    shop_fee_bp: int = Field(default=500, ge=0, le=BPS_MAX)
    shop_fee_address: str = "platform:fees"
    shop_currencies: str = "*"
    shop_quantity_max: int = Field(default=100, ge=1, le=QUANTITY_LIMIT)
    # How long clients and proxies may reuse a public catalog answer without asking again.
    shop_cache_max_age_s: int = Field(default=10, ge=0, le=86_400)

    _shop_currencies: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="after")
    def _parse_shop(self) -> ShopSettings:
        self._shop_currencies = currency_subset(self.shop_currencies, self.currencies,
                                                "COINPURSE_SHOP_CURRENCIES")
        if not re.match(ADDRESS_RE, self.shop_fee_address) \
                or self.shop_fee_address.startswith("user:"):
            raise ValueError("COINPURSE_SHOP_FEE_ADDRESS must be an account address that is "
                             "not a user's wallet, e.g. platform:fees")
        return self

    @property
    def sellable(self) -> frozenset[str]:
        """The currencies products may be priced in."""
        return self._shop_currencies
