"""The HTTP edge: body limits and rate limits."""

from __future__ import annotations

from pydantic import Field, field_validator

from coinpurse.core.settings import CoreSettings
from coinpurse.http.ratelimit import check_spec


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
