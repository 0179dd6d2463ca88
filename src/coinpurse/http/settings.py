"""The HTTP edge: body limits, rate limits, proxies, metrics and shutdown."""

from __future__ import annotations

import ipaddress

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from coinpurse.core.settings import CoreSettings
from coinpurse.http.ratelimit import check_spec

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    """``10.0.0.0/8, 192.168.1.7, ::1`` -> networks (a bare address is a /32 or /128)."""
    found: list[IPNetwork] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or a CIDR such as 10.0.0.0/8") \
                from None
    return tuple(found)


class HttpSettings(CoreSettings):
    body_max_bytes: int = Field(default=65_536, ge=1024, le=16 * 1024 * 1024)
    batch_body_max_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1024 * 1024)
    # Rate limits ("N/second|minute|hour", or off); storage memory:// or redis://host:port
    rate_limit_storage: str = "memory://"
    rate_limit_service: str = "off"  # e.g. 60000/minute; internal callers are trusted
    rate_limit_user: str = "1200/minute"
    rate_limit_ip: str = "6000/minute"  # user and admin API only; backends share addresses
    rate_limit_login: str = "10/minute"  # sign-in and 2FA attempts per account
    rate_limit_login_ip: str = "50/minute"  # ... and per client address
    # The hot wallet routes served without FastAPI's per-request machinery (http/fastpath.py);
    # off: every request goes through FastAPI (the same answers, more CPU).
    fast_path: bool = True
    # Redis shared by every process: rate-limit counters (unless rate_limit_storage says
    # otherwise). redis://[:password@]host:6379[/db]. The same variable as the events
    # domain's pub/sub (one Redis); a str like there (config check masks its password).
    redis_url: str | None = None
    # Proxies (CIDRs) whose X-Forwarded-For / X-Forwarded-Proto are believed; none: the
    # peer address is the client's.
    trusted_proxies: str = ""
    # /metrics needs "Authorization: Bearer <token>"; unset: /metrics is not served
    # (use `serve --metrics-port`).
    metrics_token: SecretStr | None = None
    # SIGTERM: stop accepting, finish in-flight requests and ledger batches within this.
    shutdown_timeout_s: int = Field(default=30, ge=1, le=600)

    _proxies: tuple[IPNetwork, ...] = PrivateAttr(default=())

    @field_validator("rate_limit_service", "rate_limit_user", "rate_limit_ip",
                     "rate_limit_login", "rate_limit_login_ip")
    @classmethod
    def _check_limit(cls, value: str) -> str:
        try:
            return check_spec(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as 600/minute, or off") from None

    @field_validator("rate_limit_storage")
    @classmethod
    def _check_storage(cls, value: str) -> str:
        from coinpurse.http.ratelimit import check_storage

        return check_storage(value)

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str | None) -> str | None:
        from coinpurse.http.ratelimit import check_storage

        if value:
            if not value.startswith(("redis://", "rediss://", "redis+unix://")):
                raise ValueError("must be redis://host:port (or rediss://)")
            check_storage(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _parse(self) -> HttpSettings:
        self._proxies = parse_networks(self.trusted_proxies)
        return self

    @property
    def proxies(self) -> tuple[IPNetwork, ...]:
        return self._proxies

    @property
    def rate_limit_uri(self) -> str:
        """Where the counters live: rate_limit_storage, or redis_url when that is unset."""
        if self.rate_limit_storage == "memory://" and self.redis_url:
            return self.redis_url
        return self.rate_limit_storage
