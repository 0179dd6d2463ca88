"""Settings, read once from ``COINPURSE_*`` environment variables and validated at start-up.

A bad value stops the process with a message naming the variable, instead of failing later
on the first request that needs it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CURRENCY_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
SCALE_MAX = 18


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    scale: int


def parse_currencies(raw: str) -> dict[str, Currency]:
    """Parse ``code:scale`` pairs such as ``points:0,usdt:2``."""
    currencies: dict[str, Currency] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        code, sep, scale_text = part.partition(":")
        code = code.strip()
        if not sep or not CURRENCY_CODE_RE.match(code):
            raise ValueError(
                f"{part!r} is not a code:scale pair (code: lowercase letters, digits and _, "
                "at most 16 characters; e.g. points:0,usdt:2)"
            )
        if not scale_text.strip().isdigit() or int(scale_text) > SCALE_MAX:
            raise ValueError(f"scale of {code!r} must be an integer from 0 to {SCALE_MAX}")
        if code in currencies:
            raise ValueError(f"currency {code!r} is listed twice")
        currencies[code] = Currency(code=code, scale=int(scale_text))
    if not currencies:
        raise ValueError("at least one currency is needed, e.g. points:0,usdt:2")
    return currencies


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COINPURSE_", extra="ignore")

    database_url: str = "sqlite:///./coinpurse.db"
    currencies: str = "points:0,usdt:2"
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # Addresses that may go below zero because they stand for money outside the users' wallets.
    overdraft_addresses: str = "world,service:*,provider:*"
    idempotency_ttl_s: int = Field(default=86_400, ge=60, le=90 * 86_400)
    body_max_bytes: int = Field(default=65_536, ge=1024, le=16 * 1024 * 1024)
    batch_body_max_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1024 * 1024)
    metadata_max_bytes: int = Field(default=4096, ge=64, le=65_536)
    batch_max: int = Field(default=500, ge=1, le=10_000)
    committers: int = Field(default=0, ge=0, le=32)  # 0: 1 on SQLite, 2 on PostgreSQL
    db_pool_size: int = Field(default=10, ge=1, le=200)
    log_level: str = "info"

    @field_validator("currencies")
    @classmethod
    def _check_currencies(cls, value: str) -> str:
        parse_currencies(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "sqlite+", "postgresql://", "postgres://",
                                 "postgresql+")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("jwt_public_key")
    @classmethod
    def _load_public_key(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if "-----BEGIN" in value:
            return value.replace("\\n", "\n")
        path = Path(value)
        if path.is_file():
            return path.read_text()
        raise ValueError("must be a PEM public key or the path of a file holding one")

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return value.lower()

    @cached_property
    def currency_map(self) -> dict[str, Currency]:
        return parse_currencies(self.currencies)

    @cached_property
    def overdraft_patterns(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.overdraft_addresses.split(",") if p.strip())

    def may_go_negative(self, address: str) -> bool:
        """User wallets never do, whatever the configuration says."""
        if address.startswith("user:"):
            return False
        return any(fnmatch.fnmatchcase(address, p) for p in self.overdraft_patterns)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def committer_count(self) -> int:
        if self.is_sqlite:
            return 1
        return self.committers or 2


def load_settings() -> Settings:
    """Read the environment; raise ConfigError with one line per bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"COINPURSE_{field.upper()}: {msg}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
