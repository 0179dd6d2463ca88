"""The event log's settings, and those of what reads it: webhooks, the live stream,
notifications, e-mail."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from coinpurse.core.settings import CoreSettings

# Event types that can notify a user, and whom (notifications.py maps each one).
NOTIFIABLE = ("topup.succeeded", "topup.failed", "topup.refunded", "gift.sent",
              "withdrawal.requested", "withdrawal.paid", "withdrawal.rejected",
              "withdrawal.cancelled", "withdrawal.expired", "kyc.approved", "kyc.rejected")
NOTIFY_DEFAULT = ("topup.succeeded,gift.sent,withdrawal.paid,withdrawal.rejected,"
                  "kyc.approved,kyc.rejected")


class EventSettings(CoreSettings):
    # Events older than this are deleted (consumers must keep up within it).
    events_retention_days: int = Field(default=30, ge=1, le=3650)
    # Fan-out, webhook delivery, notifications and e-mail run in this process (serve and
    # worker); false where another process (``coinpurse worker``) runs them.
    events_jobs: bool = True

    # Webhooks to services.
    webhook_allow_private: bool = False  # true only for development and tests
    webhook_timeout_s: float = Field(default=10.0, ge=0.5, le=30.0)
    webhook_retry_for_s: int = Field(default=3 * 86_400, ge=60, le=30 * 86_400)
    webhook_backoff_base_s: float = Field(default=10.0, ge=0.05, le=3600.0)
    webhook_backoff_max_s: float = Field(default=6 * 3600.0, ge=0.1, le=86_400.0)
    # A sender's claim on a delivery; after it, another process may send it again.
    webhook_lease_s: float = Field(default=60.0, ge=1.0, le=3600.0)
    webhook_concurrency: int = Field(default=16, ge=1, le=256)  # in flight per process
    webhook_secret_grace_s: int = Field(default=86_400, ge=0, le=30 * 86_400)

    # Live updates (SSE, WebSocket); per process.
    redis_url: str | None = None  # pub/sub wake-ups across processes instead of LISTEN
    live_streams_max: int = Field(default=1000, ge=1, le=100_000)
    live_streams_per_user: int = Field(default=5, ge=1, le=100)
    live_queue_max: int = Field(default=256, ge=8, le=10_000)
    live_heartbeat_s: float = Field(default=15.0, ge=0.2, le=300.0)
    live_resume_max: int = Field(default=2000, ge=10, le=100_000)  # events scanned on resume
    live_poll_s: float = Field(default=1.0, ge=0.05, le=30.0)  # when no wake-up comes

    # Notifications and e-mail.
    notify_events: str = NOTIFY_DEFAULT
    smtp_url: str | None = None  # smtp://user:pass@host:587?starttls=true, smtps://host:465
    smtp_from: str = "Coinpurse <no-reply@localhost>"
    email_max_attempts: int = Field(default=8, ge=1, le=50)
    email_backoff_base_s: float = Field(default=30.0, ge=0.05, le=3600.0)

    @field_validator("notify_events")
    @classmethod
    def _check_notify(cls, value: str) -> str:
        types = [t.strip() for t in value.split(",") if t.strip()]
        bad = [t for t in types if t not in NOTIFIABLE]
        if bad:
            raise ValueError(f"{', '.join(bad)} cannot notify; choose from "
                             + ", ".join(NOTIFIABLE))
        return ",".join(types)

    @field_validator("smtp_url", "redis_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
                raise ValueError("must be smtp://[user:password@]host[:port][?starttls=true] "
                                 "or smtps://...")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be redis://host:port or rediss://...")
        return value

    @model_validator(mode="after")
    def _check_lease(self) -> EventSettings:
        if self.webhook_lease_s <= self.webhook_timeout_s:
            raise ValueError("COINPURSE_WEBHOOK_LEASE_S must be longer than "
                             "COINPURSE_WEBHOOK_TIMEOUT_S (a delivery in flight keeps its "
                             "lease)")
        return self

    @property
    def notify_types(self) -> frozenset[str]:
        return frozenset(t for t in self.notify_events.split(",") if t)
