"""The events domain's requests and answers: the log, webhooks, monitors, notifications."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

from coinpurse.core.clock import iso, utcnow
from coinpurse.core.types import (
    AMOUNT_MAX,
    Address,
    CurrencyCode,
    StrictModel,
    UserId,
    clean_text,
)
from coinpurse.events.monitors import Monitor
from coinpurse.events.monitors import view as monitor_view
from coinpurse.events.notifications import Notification
from coinpurse.events.repository import StoredEvent
from coinpurse.events.service import PATTERN_RE, TYPES_MAX
from coinpurse.events.webhooks import Delivery, Endpoint


class EventOut(BaseModel):
    id: str = Field(description="Unique; grows in the order readers see events. A string: "
                    "ids exceed what a JSON number holds exactly in JavaScript.")
    type: str = Field(examples=["transaction.posted"])
    created_at: str
    data: dict[str, Any]

    @classmethod
    def of(cls, e: StoredEvent) -> EventOut:
        return cls(id=str(e.id), type=e.type,
                   created_at=e.created_at.isoformat().replace("+00:00", "Z"), data=e.data)


class EventPage(BaseModel):
    data: list[EventOut]
    next_cursor: str = Field(description="Pass it back as `after` to read on; it stays the "
                             "same while there is nothing new.")


# ------------------------------------------------------------------- webhooks (admin)

EventPattern = Annotated[str, StringConstraints(max_length=64, pattern=PATTERN_RE.pattern),
                         Field(examples=["topup.*"])]
Patterns = Annotated[list[EventPattern], Field(min_length=1, max_length=TYPES_MAX, description=(
    "Event types or patterns: `transaction.posted`, `topup.*`, `*` for every event."))]
WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048), Field(
    description="http(s) URL on the public internet (no loopback, private, link-local or "
    "metadata addresses unless `COINPURSE_WEBHOOK_ALLOW_PRIVATE=true`); redirects are not "
    "followed.", examples=["https://games.example.com/coinpurse/webhooks"])]
EndpointDescription = Annotated[str, StringConstraints(max_length=255), clean_text]


class WebhookEndpointIn(StrictModel):
    url: WebhookUrl
    events: Patterns
    description: EndpointDescription = ""
    enabled: bool = True

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "url": "https://games.example.com/coinpurse/webhooks",
        "events": ["transaction.posted", "topup.*"], "description": "game server"}]})


class WebhookEndpointPatchIn(StrictModel):
    url: WebhookUrl | None = None
    events: Patterns | None = None
    description: EndpointDescription | None = None
    enabled: bool | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"enabled": False}, {"events": ["*"]}]})


class SecretRotateIn(StrictModel):
    model_config = {"json_schema_extra": {"examples": [{"grace_s": 3600}]}}

    grace_s: int | None = Field(default=None, ge=0, le=30 * 86_400, description=(
        "How long the old secret still signs (both `v1` signatures are sent); default "
        "`COINPURSE_WEBHOOK_SECRET_GRACE_S` (24 hours); 0 drops it at once."))


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    previous_secret_expires_at: str | None = Field(description=(
        "While set, the previous secret still signs deliveries too."))
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, e: Endpoint) -> WebhookEndpointOut:
        live = e.previous_secret is not None and e.previous_secret_expires_at is not None \
            and e.previous_secret_expires_at > utcnow()
        return cls(id=e.id, url=e.url, events=list(e.events), description=e.description,
                   enabled=e.enabled,
                   previous_secret_expires_at=iso(e.previous_secret_expires_at) if live
                   else None, created_at=str(iso(e.created_at)),
                   updated_at=str(iso(e.updated_at)))


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    secret: str = Field(description="The signing secret: shown in this answer only.")


class WebhookEndpointPage(BaseModel):
    data: list[WebhookEndpointOut]
    next_cursor: str | None


class DeliveryOut(BaseModel):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str = Field(description="pending (waiting or retrying), delivered, failed")
    attempts: int
    last_status_code: int | None = Field(description="The receiver's last HTTP status")
    last_error: str | None
    next_attempt_at: str | None = Field(description="When pending: the next try")
    created_at: str
    updated_at: str
    delivered_at: str | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(id=d.id, endpoint_id=d.endpoint_id, event_id=str(d.event_id),
                   event_type=d.event_type, status=d.status, attempts=d.attempts,
                   last_status_code=d.last_status_code, last_error=d.last_error,
                   next_attempt_at=iso(d.next_attempt_at), created_at=str(iso(d.created_at)),
                   updated_at=str(iso(d.updated_at)), delivered_at=iso(d.delivered_at))


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None


# ------------------------------------------------------------------- monitors (internal)


class BalanceMonitorIn(StrictModel):
    address: Address | None = Field(default=None, description="Any account; or user_id")
    user_id: UserId | None = Field(default=None, description="The user's wallet user:<id>")
    currency: CurrencyCode
    condition: Literal["below", "above"]
    amount: Annotated[StrictInt, Field(ge=-AMOUNT_MAX, le=AMOUNT_MAX, description=(
        "The threshold, in minor units (negative for accounts that may go below zero)."))]
    description: EndpointDescription = ""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "address": "service:games", "currency": "points", "condition": "below",
        "amount": -1_000_000, "description": "games has issued a million points"}]})

    @model_validator(mode="after")
    def _one_target(self) -> BalanceMonitorIn:
        if (self.address is None) == (self.user_id is None):
            raise ValueError("give either address or user_id")
        return self

    @property
    def target(self) -> str:
        return self.address if self.address is not None else f"user:{self.user_id}"


class BalanceMonitorOut(BaseModel):
    id: str
    address: str
    currency: str
    condition: str
    amount: int
    description: str
    service: str | None
    created_at: str

    @classmethod
    def of(cls, m: Monitor) -> BalanceMonitorOut:
        return cls.model_validate(monitor_view(m))


class BalanceMonitorPage(BaseModel):
    data: list[BalanceMonitorOut]
    next_cursor: str | None


# ------------------------------------------------------------------- notifications (users)


class NotificationOut(BaseModel):
    id: str
    kind: str = Field(description="The event type it comes from, e.g. topup.succeeded",
                      examples=["topup.succeeded"])
    title: str
    body: str
    data: dict[str, Any] = Field(description="The event's data")
    event_id: str
    created_at: str
    read_at: str | None

    @classmethod
    def of(cls, n: Notification) -> NotificationOut:
        view = n.view()
        view.pop("user_id")
        return cls.model_validate(view)


class NotificationPage(BaseModel):
    data: list[NotificationOut]
    next_cursor: str | None
    unread_count: int


class ReadAllOut(BaseModel):
    marked_read: int
    unread_count: int
