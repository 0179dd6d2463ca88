"""The running app's parts, handed to routes and services (no web framework here)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.auth.keycache import KeyCache
from coinpurse.auth.tokens import TokenVerifier
from coinpurse.config import Settings
from coinpurse.errors import UnknownCurrency
from coinpurse.ledger.service import Ledger
from coinpurse.ratelimit import RateLimits


@dataclass
class AppState:
    settings: Settings
    db: AsyncEngine
    ledger: Ledger
    verifier: TokenVerifier
    rate_limits: RateLimits
    key_cache: KeyCache
    # COINPURSE_READ_DATABASE_URL: histories from a standby (coinpurse.cluster.reads).
    read_db: AsyncEngine | None = None

    def currency(self, code: str) -> str:
        if code not in self.settings.currency_map:
            raise UnknownCurrency(
                f"{code!r} is not a currency here; configured: "
                + ", ".join(self.settings.currency_map),
            )
        return code


