"""The whole configuration: every domain's settings section, read from ``COINPURSE_*``.

Each section lives with its domain (``<domain>/settings.py``) and validates its own values;
services take the section they need. Adding a domain with settings adds its section here.
"""

from __future__ import annotations

from coinpurse.admin.settings import AdminSettings
from coinpurse.auth.settings import AuthSettings
from coinpurse.bonuses.settings import BonusSettings
from coinpurse.core.settings import ConfigError, load, unknown_variables
from coinpurse.events.settings import EventSettings
from coinpurse.gifts.settings import GiftSettings
from coinpurse.graphql.settings import GraphQLSettings
from coinpurse.http.settings import HttpSettings
from coinpurse.kyc.settings import KycSettings
from coinpurse.payments.settings import PaymentSettings
from coinpurse.reconcile.settings import ReconcileSettings
from coinpurse.shop.settings import ShopSettings
from coinpurse.wallets.settings import WalletSettings
from coinpurse.withdrawals.settings import WithdrawalSettings

__all__ = ["ConfigError", "Settings", "load_settings", "unknown_settings"]


class Settings(HttpSettings, AuthSettings, AdminSettings, EventSettings, WalletSettings,
               GiftSettings, PaymentSettings, WithdrawalSettings, KycSettings, ShopSettings,
               GraphQLSettings, ReconcileSettings, BonusSettings):
    """Every setting; see the README's configuration tables."""


def load_settings() -> Settings:
    """Read the environment; raise ConfigError with one line per bad variable."""
    return load(Settings)


def unknown_settings() -> list[str]:
    """``COINPURSE_*`` variables that no setting reads (typos), with suggestions."""
    return unknown_variables(Settings.model_fields)
