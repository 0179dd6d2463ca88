"""Refusals of the wallet API's policies (the ledger's own are in ledger/errors.py)."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError


class CurrencyNotTransferable(CoinpurseError):
    code = "currency_not_transferable"
    status = 422
    title = "This currency cannot move between users"
