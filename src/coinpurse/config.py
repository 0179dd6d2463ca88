"""Settings, read once from ``COINPURSE_*`` environment variables and validated at start-up.

A bad value stops the process with a message naming the variable, instead of failing later
on the first request that needs it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from coinpurse.cluster.urls import DbOptions

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


@dataclass(frozen=True, slots=True)
class GiftType:
    code: str
    price: int
    currency: str


GIFT_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
BPS_MAX = 10_000


def _currency_set(raw: str, currencies: dict[str, Currency], what: str) -> frozenset[str]:
    if raw.strip() == "*":
        return frozenset(currencies)
    codes = frozenset(c.strip() for c in raw.split(",") if c.strip())
    unknown = codes - set(currencies)
    if unknown:
        raise ValueError(f"{what} names currencies that are not configured: "
                         + ", ".join(sorted(unknown)))
    return codes


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
    batch_max: int = Field(default=500, ge=1, le=10_000)
    # Concurrent batches per process. One is best measured (bench/): batches grow larger and
    # do not wait on each other's row locks; more helps only when commits are slow.
    committers: int = Field(default=1, ge=1, le=32)
    db_pool_size: int = Field(default=20, ge=1, le=200)
    # A PostgreSQL cluster (docs/high-availability.md): bounded waits on a dead server, how
    # long the ledger retries a batch whose connection failed, PgBouncer in transaction
    # mode, a direct URL for LISTEN and migrations, and optional reads from a standby.
    db_connect_timeout_s: float = Field(default=5.0, gt=0, le=300)
    db_command_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    db_retry_s: float = Field(default=20.0, ge=0, le=600)
    db_pooling: Literal["session", "transaction"] = "session"
    direct_database_url: str | None = None
    read_database_url: str | None = None
    log_level: str = "info"
    # external: verify tokens of an existing auth system; builtin: Coinpurse's own accounts.
    auth: Literal["external", "builtin"] = "external"
    access_token_ttl_s: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_s: int = Field(default=30 * 86_400, ge=3600, le=365 * 86_400)
    # Adjustments above this amount (minor units) wait for a second admin's approval.
    adjustment_approval_above: int = Field(default=100_000, ge=0)
    key_rotation_grace_s: int = Field(default=86_400, ge=0, le=30 * 86_400)
    # Rate limits ("N/second|minute|hour"), storage memory:// or redis://host:port
    rate_limit_storage: str = "memory://"
    rate_limit_service: str = "off"  # e.g. 60000/minute; internal callers are trusted
    rate_limit_user: str = "1200/minute"
    rate_limit_ip: str = "6000/minute"  # user and admin API only; backends share addresses
    rate_limit_login: str = "10/minute"  # sign-in and 2FA attempts per account
    rate_limit_login_ip: str = "50/minute"  # ... and per client address

    @field_validator("rate_limit_service", "rate_limit_user", "rate_limit_ip",
                     "rate_limit_login", "rate_limit_login_ip")
    @classmethod
    def _check_limit(cls, value: str) -> str:
        from coinpurse.ratelimit import check_spec

        try:
            return check_spec(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as 600/minute, or off") from None
    # Gifts: a catalog of type:price[:currency] (currency defaults to the first giftable one).
    gift_catalog: str = "rose:10,heart:50,rocket:500,car:1000"
    gift_currencies: str = "*"
    transfer_currencies: str = "*"
    gift_platform_bps: int = Field(default=2000, ge=0, le=BPS_MAX)
    gift_agency_bps: int = Field(default=1000, ge=0, le=BPS_MAX)
    gift_allow_amount: bool = True
    platform_fee_address: str = "platform:fees"
    # Top-ups, withdrawals and KYC (README: "Top-ups, withdrawals and KYC").
    public_url: str = "http://127.0.0.1:8000"
    topup_providers: str = "mock"  # comma-separated: mock, stripe, razorpay
    topup_packages: str = "small:100:99:usd,medium:1000+20%:799:usd,large:10000+30%:6999:usd"
    topup_rates: str = ""  # currency:per:price:price_currency; empty: packages only
    topup_return_url: str = ""  # default {public_url}/topup-return
    topup_order_ttl_s: int = Field(default=3600, ge=1800, le=86_400)
    promotions_address: str = "service:promotions"
    payouts_address: str = "platform:payouts"
    mock_webhook_secret: SecretStr = SecretStr("whsec_mock_development_only_not_a_secret")
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secrets: SecretStr | None = None  # comma-separated, for rotation
    stripe_webhook_tolerance_s: int = Field(default=300, ge=1, le=3600)
    stripe_api_base: str | None = None  # tests point the SDK at a local fake
    razorpay_key_id: str | None = None
    razorpay_key_secret: SecretStr | None = None
    razorpay_webhook_secret: SecretStr | None = None
    razorpay_api_base: str | None = None
    withdrawal_currencies: str = ""  # code[:min[:max]]; empty: no withdrawals
    withdrawal_hold_ttl_s: int = Field(default=30 * 86_400, ge=3600, le=365 * 86_400)
    kyc_tiers: str = ""  # JSON; empty: coinpurse.kyc.tiers.DEFAULT_TIERS
    inbox_poll_s: float = Field(default=1.0, ge=0, le=3600)  # 0: no inbox worker here
    inbox_max_attempts: int = Field(default=12, ge=1, le=100)

    @field_validator("currencies")
    @classmethod
    def _check_currencies(cls, value: str) -> str:
        parse_currencies(value)
        return value

    @model_validator(mode="after")
    def _check_gifts(self) -> Settings:
        currencies = parse_currencies(self.currencies)
        giftable = _currency_set(self.gift_currencies, currencies, "COINPURSE_GIFT_CURRENCIES")
        _currency_set(self.transfer_currencies, currencies, "COINPURSE_TRANSFER_CURRENCIES")
        default = next((c for c in currencies if c in giftable), next(iter(currencies)))
        try:
            parse_gift_catalog(self.gift_catalog, currencies, default)
        except ValueError as exc:
            raise ValueError(f"COINPURSE_GIFT_CATALOG: {exc}") from None
        if self.auth == "builtin" and self.jwt_secret is None:
            raise ValueError("COINPURSE_AUTH=builtin signs its own tokens: set "
                             "COINPURSE_JWT_SECRET (at least 32 random characters)")
        if self.gift_platform_bps + self.gift_agency_bps > BPS_MAX:
            raise ValueError("COINPURSE_GIFT_PLATFORM_BPS + COINPURSE_GIFT_AGENCY_BPS must be "
                             f"at most {BPS_MAX} (100%)")
        self._check_payments(list(currencies))
        return self

    def _check_payments(self, currencies: list[str]) -> None:
        from coinpurse.kyc.tiers import parse_tiers
        from coinpurse.payments.packages import (
            parse_packages,
            parse_rates,
            parse_withdrawable,
        )

        for name, parse in (("TOPUP_PACKAGES", parse_packages), ("TOPUP_RATES", parse_rates),
                            ("WITHDRAWAL_CURRENCIES", parse_withdrawable)):
            try:
                parse(getattr(self, name.lower()), currencies)
            except ValueError as exc:
                raise ValueError(f"COINPURSE_{name}: {exc}") from None
        try:
            parse_tiers(self.kyc_tiers_json, set(currencies))
        except ValueError as exc:
            raise ValueError(f"COINPURSE_KYC_TIERS: {exc}") from None
        unknown = set(self.providers) - {"mock", "stripe", "razorpay"}
        if unknown:
            raise ValueError("COINPURSE_TOPUP_PROVIDERS: unknown provider(s) "
                             + ", ".join(sorted(unknown)) + "; known: mock, stripe, razorpay")
        needs = {"stripe": ("stripe_secret_key", "stripe_webhook_secrets"),
                 "razorpay": ("razorpay_key_id", "razorpay_key_secret",
                              "razorpay_webhook_secret")}
        for provider, fields in needs.items():
            for name in fields:
                if provider in self.providers and not getattr(self, name):
                    raise ValueError(f"COINPURSE_{name.upper()} is required when "
                                     f"COINPURSE_TOPUP_PROVIDERS includes {provider}")

    @property
    def kyc_tiers_json(self) -> str:
        from coinpurse.kyc.tiers import DEFAULT_TIERS

        return self.kyc_tiers.strip() or DEFAULT_TIERS

    @cached_property
    def providers(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.topup_providers.split(",") if p.strip())

    @cached_property
    def giftable(self) -> frozenset[str]:
        return _currency_set(self.gift_currencies, self.currency_map, "gift currencies")

    @cached_property
    def transferable(self) -> frozenset[str]:
        return _currency_set(self.transfer_currencies, self.currency_map,
                             "transfer currencies")

    @cached_property
    def gift_types(self) -> dict[str, GiftType]:
        default = next((c for c in self.currency_map if c in self.giftable),
                       next(iter(self.currency_map)))
        return parse_gift_catalog(self.gift_catalog, self.currency_map, default)

    @field_validator("database_url", "direct_database_url", "read_database_url")
    @classmethod
    def _check_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        from coinpurse.cluster import urls

        if (value is None or value.strip() == "") and info.field_name != "database_url":
            return None
        assert value is not None
        if not value.startswith(("sqlite://", "sqlite+", "postgresql://", "postgres://",
                                 "postgresql+")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        if urls.is_multi_host(value):
            urls.parse(value)  # a ValueError names what is wrong
        return value

    @model_validator(mode="after")
    def _check_cluster(self) -> Settings:
        extra = [n for n in ("direct_database_url", "read_database_url") if getattr(self, n)]
        if self.is_sqlite and (extra or self.db_pooling != "session"):
            names = [f"COINPURSE_{n.upper()}" for n in extra]
            if self.db_pooling != "session":
                names.append("COINPURSE_DB_POOLING")
            raise ValueError(", ".join(names) + " need PostgreSQL")
        return self

    @property
    def db_options(self) -> DbOptions:
        """For ``database_url`` (which may go through PgBouncer)."""
        return DbOptions(connect_timeout_s=self.db_connect_timeout_s,
                         command_timeout_s=self.db_command_timeout_s, pooling=self.db_pooling)

    @property
    def direct_db(self) -> tuple[str, DbOptions]:
        """A session-capable URL for LISTEN and migrations: the direct URL if set."""
        if self.direct_database_url:
            return self.direct_database_url, replace(self.db_options, pooling="session")
        return self.database_url, self.db_options

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
        return 1 if self.is_sqlite else self.committers


def load_settings() -> Settings:
    """Read the environment; raise ConfigError with one line per bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["loc"]:
                lines.append(f"COINPURSE_{str(err['loc'][0]).upper()}: {msg}")
            else:
                lines.append(msg)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
