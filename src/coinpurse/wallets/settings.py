"""Which currencies may move between two users' wallets through the transfers API."""

from __future__ import annotations

from pydantic import PrivateAttr, model_validator

from coinpurse.ledger.settings import LedgerSettings, currency_subset


class WalletSettings(LedgerSettings):
    transfer_currencies: str = "*"

    _transferable: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="after")
    def _parse_wallets(self) -> WalletSettings:
        self._transferable = currency_subset(self.transfer_currencies, self.currencies,
                                             "COINPURSE_TRANSFER_CURRENCIES")
        return self

    @property
    def transferable(self) -> frozenset[str]:
        return self._transferable
