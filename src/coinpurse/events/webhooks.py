"""Webhooks to services: endpoints (admin), the fan-out of the log to deliveries, and the
sender that POSTs them, signed, with retries.

* **Fan-out** (a consumer of the log, ``consumer.py``): each event matching an enabled
  endpoint's patterns becomes one delivery row, exactly once, in the transaction that moves
  the consumer's cursor.
* **Sender**: claims due deliveries with a lease (one statement; ``FOR UPDATE SKIP LOCKED``
  on PostgreSQL), so several processes never send one delivery at the same time; POSTs each
  outside any transaction, through the SSRF guard (``ssrf.py``), with a 10 s budget; a 2xx
  is delivered, anything else is retried with exponential backoff and full jitter until
  the delivery is 3 days old, then ``failed``. A sender that dies mid-delivery loses nothing:
  its lease runs out and the delivery is sent again (receivers deduplicate by event id).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpcore
import orjson
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse import __version__
from coinpurse.auth.tokens import Principal
from coinpurse.core import audit, metrics
from coinpurse.core.clock import iso, utcnow
from coinpurse.core.errors import NotFound, ValidationFailed
from coinpurse.core.ids import new_id
from coinpurse.events import repository, signature, ssrf
from coinpurse.events.errors import WebhookUrlRefused
from coinpurse.events.repository import StoredEvent
from coinpurse.events.service import TypeFilter
from coinpurse.events.settings import EventSettings

log = logging.getLogger("coinpurse.webhooks")
ENDPOINTS_MAX = 100
RESPONSE_READ_MAX = 64 * 1024  # bytes of a receiver's answer read, at most
ERROR_MAX = 500
FANOUT_CURSOR = "webhooks"


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]
    description: str
    enabled: bool
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Row[Any]) -> Endpoint:
        return cls(row.id, row.url, tuple(orjson.loads(row.events_json)), row.description,
                   bool(row.enabled), row.secret, row.previous_secret,
                   row.previous_secret_expires_at, row.created_at, row.updated_at)

    def wants(self, event: StoredEvent) -> bool:
        return event.created_at >= self.created_at and patterns(self.events).matches(
            event.type)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, and the previous one while its grace period runs."""
        live = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at \
                and self.previous_secret_expires_at > now:
            live.append(self.previous_secret)
        return live


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    endpoint_id: str
    event_id: int
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> Delivery:
        return cls(row.id, row.endpoint_id, row.event_id, row.event_type, row.status,
                   row.attempts, row.next_attempt_at if row.status == "pending" else None,
                   row.last_status_code, row.last_error, row.created_at, row.updated_at,
                   row.delivered_at)


def patterns(events: tuple[str, ...]) -> TypeFilter:
    return TypeFilter.parse(",".join(events))


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def _check_url(url: str, settings: EventSettings) -> None:
    try:
        await ssrf.check(url, settings.webhook_allow_private)
    except ssrf.UnsafeUrl as exc:
        raise WebhookUrlRefused(str(exc), reason=exc.reason) from None


# ------------------------------------------------------------------- endpoints (admin)


async def create(db: AsyncEngine, settings: EventSettings, admin: Principal, *, url: str,
                 events: list[str], description: str, enabled: bool,
                 ip: str | None) -> Endpoint:
    await _check_url(url, settings)
    now = utcnow()
    row = {"id": new_id(), "url": url, "events_json": orjson.dumps(events).decode(),
           "description": description, "enabled": enabled, "secret": new_secret(),
           "previous_secret": None, "previous_secret_expires_at": None,
           "created_by": admin.user_id, "created_at": now, "updated_at": now}
    async with db.begin() as conn:
        if await repository.count_endpoints(conn) >= ENDPOINTS_MAX:
            raise ValidationFailed(f"at most {ENDPOINTS_MAX} webhook endpoints; delete one",
                                   reason="too_many_endpoints")
        await repository.insert_endpoint(conn, row)
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="webhook_endpoint.create", target=f"webhook:{row['id']}",
                           details={"url": url, "events": events}, ip=ip)
        return Endpoint.of(await _must(conn, str(row["id"])))


async def _must(conn: AsyncConnection, endpoint_id: str, lock: bool = False) -> Row[Any]:
    row = await repository.endpoint(conn, endpoint_id, lock=lock)
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id!r}")
    return row


async def get(db: AsyncEngine, endpoint_id: str) -> Endpoint:
    async with db.connect() as conn:
        return Endpoint.of(await _must(conn, endpoint_id))


async def page(db: AsyncEngine, before: str | None,
               limit: int) -> tuple[list[Endpoint], str | None]:
    rows, next_id = await repository.endpoints_page(db, before, limit)
    return [Endpoint.of(r) for r in rows], next_id


async def update(db: AsyncEngine, settings: EventSettings, admin: Principal,
                 endpoint_id: str, changes: dict[str, Any], ip: str | None) -> Endpoint:
    """``changes``: any of url, events, description, enabled."""
    if "url" in changes:
        await _check_url(changes["url"], settings)
    values = {k: v for k, v in changes.items() if k in ("url", "description", "enabled")}
    if "events" in changes:
        values["events_json"] = orjson.dumps(changes["events"]).decode()
    async with db.begin() as conn:
        await _must(conn, endpoint_id, lock=True)
        await repository.update_endpoint(conn, endpoint_id, {**values, "updated_at": utcnow()})
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="webhook_endpoint.update", target=f"webhook:{endpoint_id}",
                           details=changes, ip=ip)
        return Endpoint.of(await _must(conn, endpoint_id))


async def delete(db: AsyncEngine, admin: Principal, endpoint_id: str, ip: str | None) -> None:
    """The endpoint and its deliveries (pending ones are never sent)."""
    async with db.begin() as conn:
        found = Endpoint.of(await _must(conn, endpoint_id, lock=True))
        await repository.delete_endpoint(conn, endpoint_id)
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="webhook_endpoint.delete", target=f"webhook:{endpoint_id}",
                           details={"url": found.url}, ip=ip)


async def rotate(db: AsyncEngine, admin: Principal, endpoint_id: str, grace_s: int,
                 ip: str | None) -> Endpoint:
    """A new secret signs from now on; the old one also signs every delivery for
    ``grace_s`` seconds (both ``v1`` values are sent), so receivers can switch over."""
    now = utcnow()
    async with db.begin() as conn:
        old = Endpoint.of(await _must(conn, endpoint_id, lock=True))
        await repository.update_endpoint(conn, endpoint_id, {
            "secret": new_secret(), "updated_at": now,
            "previous_secret": old.secret if grace_s > 0 else None,
            "previous_secret_expires_at": now + timedelta(seconds=grace_s) if grace_s > 0
            else None})
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="webhook_endpoint.rotate_secret",
                           target=f"webhook:{endpoint_id}", details={"grace_s": grace_s},
                           ip=ip)
        return Endpoint.of(await _must(conn, endpoint_id))


async def deliveries(db: AsyncEngine, endpoint_id: str, status: str | None,
                     before: str | None, limit: int) -> tuple[list[Delivery], str | None]:
    await get(db, endpoint_id)
    rows, next_id = await repository.deliveries_page(db, endpoint_id, status, before, limit)
    return [Delivery.of(r) for r in rows], next_id


async def redeliver(db: AsyncEngine, settings: EventSettings, admin: Principal,
                    endpoint_id: str, delivery_id: str, ip: str | None) -> Delivery:
    """Send a delivery again, now, whatever its status; it gets a new retry window."""
    now = utcnow()
    async with db.begin() as conn:
        found = await repository.delivery(conn, endpoint_id, delivery_id)
        if found is None:
            raise NotFound(f"no delivery {delivery_id!r} of webhook endpoint {endpoint_id!r}")
        await repository.requeue_delivery(
            conn, delivery_id, now=now,
            expires_at=now + timedelta(seconds=settings.webhook_retry_for_s))
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="webhook_delivery.redeliver",
                           target=f"webhook:{endpoint_id}",
                           details={"delivery_id": delivery_id, "status_before": found.status},
                           ip=ip)
        row = await repository.delivery(conn, endpoint_id, delivery_id)
    assert row is not None
    return Delivery.of(row)


# ------------------------------------------------------------------- fan-out


async def any_enabled(db: AsyncEngine) -> bool:
    async with db.connect() as conn:
        return await repository.any_enabled_endpoint(conn)


def fanout(settings: EventSettings) -> Any:
    """The consumer's handler: delivery rows for the enabled endpoints each event matches."""

    async def handle(conn: AsyncConnection, found: list[StoredEvent]) -> None:
        endpoints = [Endpoint.of(r) for r in await repository.enabled_endpoints(conn)]
        now = utcnow()
        expires = now + timedelta(seconds=settings.webhook_retry_for_s)
        await repository.insert_deliveries(conn, [
            {"id": new_id(), "endpoint_id": ep.id, "event_id": ev.id, "event_type": ev.type,
             "status": "pending", "attempts": 0, "next_attempt_at": now,
             "expires_at": expires, "created_at": now, "updated_at": now}
            for ev in found for ep in endpoints if ep.wants(ev)])

    return handle


# ------------------------------------------------------------------- sending


def body(event: StoredEvent) -> bytes:
    """What is POSTed: the event as ``GET /internal/v1/events`` shows it."""
    return orjson.dumps({"id": str(event.id), "type": event.type,
                         "created_at": iso(event.created_at), "data": event.data})


def backoff_s(attempts: int, settings: EventSettings) -> float:
    """Exponential, capped, with full jitter (retries of many deliveries spread out)."""
    ceiling = min(settings.webhook_backoff_base_s * 2 ** min(attempts - 1, 32),
                  settings.webhook_backoff_max_s)
    return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class Attempt:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Sender:
    """Sends due deliveries, a batch per pass, through the guarded network backend."""

    def __init__(self, db: AsyncEngine, settings: EventSettings) -> None:
        self.db = db
        self.settings = settings

    def pool(self) -> httpcore.AsyncConnectionPool:
        return httpcore.AsyncConnectionPool(
            network_backend=ssrf.GuardedBackend(self.settings.webhook_allow_private),
            max_connections=self.settings.webhook_concurrency, retries=0)

    async def send_due(self) -> int:
        """Claim up to ``webhook_concurrency`` due deliveries and send them at once;
        returns how many were claimed."""
        now = utcnow()
        token = new_id()
        async with self.db.begin() as conn:
            claimed = await repository.claim_deliveries(
                conn, now=now, until=now + timedelta(seconds=self.settings.webhook_lease_s),
                token=token, limit=self.settings.webhook_concurrency)
            if not claimed:
                return 0
            endpoints = await repository.endpoints_by_ids(
                conn, sorted({r.endpoint_id for r in claimed}))
            found = await repository.by_ids(conn, [r.event_id for r in claimed])
        async with self.pool() as pool:
            await asyncio.gather(*(
                self._one(pool, r, Endpoint.of(endpoints[r.endpoint_id]),
                          found.get(r.event_id), token)
                for r in claimed if r.endpoint_id in endpoints))
        return len(claimed)

    async def _one(self, pool: httpcore.AsyncConnectionPool, row: Row[Any],
                   endpoint: Endpoint, event: StoredEvent | None, token: str) -> None:
        if event is None:
            result = Attempt(None, "the event is past the log's retention")
        else:
            started = time.perf_counter()
            result = await self.post(pool, endpoint, event)
            metrics.record_delivery("webhook", "ok" if result.ok else "failed",
                                    time.perf_counter() - started)
        now = utcnow()
        values: dict[str, Any] = {"last_status_code": result.status_code,
                                  "last_error": result.error[:ERROR_MAX] if result.error
                                  else None, "updated_at": now}
        if result.ok:
            values |= {"status": "delivered", "delivered_at": now}
        elif event is None or now >= row.expires_at:
            values |= {"status": "failed"}
        else:
            values |= {"next_attempt_at": min(
                now + timedelta(seconds=backoff_s(row.attempts, self.settings)),
                row.expires_at)}
        async with self.db.begin() as conn:
            await repository.finish_delivery(conn, row.id, token, values)

    async def post(self, pool: httpcore.AsyncConnectionPool, endpoint: Endpoint,
                   event: StoredEvent) -> Attempt:
        """One POST within the time budget; never raises for the receiver's faults."""
        payload = body(event)
        headers = [
            (b"Content-Type", b"application/json"),
            (b"User-Agent", f"Coinpurse-Webhooks/{__version__}".encode()),
            (signature.EVENT_ID_HEADER.encode(), str(event.id).encode()),
            (b"Coinpurse-Event-Type", event.type.encode()),
            (signature.SIGNATURE_HEADER.encode(),
             signature.header(endpoint.signing_secrets(utcnow()), payload).encode()),
        ]
        budget = self.settings.webhook_timeout_s
        timeouts = {"connect": budget, "read": budget, "write": budget, "pool": budget}
        try:
            async with asyncio.timeout(budget):
                # The URL is checked again here: resolving it, refusing private addresses
                # and connecting to the checked one happen in the guarded backend.
                ssrf.check_url(endpoint.url)
                async with pool.stream("POST", endpoint.url, headers=headers,
                                             content=payload,
                                             extensions={"timeout": timeouts}) as response:
                    read = 0
                    async for chunk in response.aiter_stream():
                        read += len(chunk)
                        if read >= RESPONSE_READ_MAX:
                            break  # the status is what counts; the body is not kept
                    status = response.status
        except ssrf.UnsafeUrl as exc:
            return Attempt(None, f"refused: {exc}")
        except TimeoutError:
            return Attempt(None, f"no answer within {budget:g} s")
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
            return Attempt(None, f"cannot connect: {exc}"[:ERROR_MAX])
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                httpcore.UnsupportedProtocol, httpcore.LocalProtocolError) as exc:
            return Attempt(None, f"{type(exc).__name__}: {exc}"[:ERROR_MAX])
        if 300 <= status < 400:
            return Attempt(status, "redirects are not followed")
        if not 200 <= status < 300:
            return Attempt(status, f"answered {status}")
        return Attempt(status, None)
