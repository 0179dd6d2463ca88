"""Coinpurse: wallets and a double-entry ledger for apps' users."""

__version__ = "0.1.0"
