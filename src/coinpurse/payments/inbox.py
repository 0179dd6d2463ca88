"""The webhook inbox: events are stored on arrival (unique by provider and event id) and
applied by a worker, with retries and exponential backoff.

``POST /webhooks/{provider}`` only checks the signature and stores the raw body, so the
provider gets its 2xx at once. Redeliveries hit the unique key and are answered 200 as
duplicates. The worker may run in several processes: a row is leased (``locked_until``)
before it is applied, and even if two workers applied one event, the ledger's claims on the
order keep the money movement exactly-once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Row, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from coinpurse.auth.tokens import Principal
from coinpurse.config import Settings
from coinpurse.core import audit
from coinpurse.core.clock import iso
from coinpurse.core.errors import CoinpurseError, NotFound
from coinpurse.payments import service as svc
from coinpurse.payments.errors import InvalidSignature, PaymentNotCompleted
from coinpurse.payments.providers.base import ProviderEvent, SignatureError
from coinpurse.payments.tables import webhook_inbox

log = logging.getLogger("coinpurse.payments.inbox")
LEASE_S = 60
BACKOFF_MAX_S = 3600
BATCH = 50


class NeedsOperator(Exception):
    """Retrying cannot help (a partial refund, an event naming no order): the event is
    marked failed for an operator."""


async def ingest(p: svc.Payments, provider_name: str, body: bytes,
                 headers: Mapping[str, str]) -> tuple[int, bool]:
    """Check the signature and store the event; returns (inbox id, duplicate)."""
    registry = svc.providers(p.settings)
    if provider_name not in registry:
        raise NotFound(f"no webhook endpoint for {provider_name!r}")
    provider = registry[provider_name]
    try:
        provider.verify_webhook(body, headers)
    except SignatureError as exc:
        raise InvalidSignature(str(exc)) from None
    now = datetime.now(UTC)
    status, error = "received", None
    try:
        event = provider.parse_event(body, headers)
        event_id, event_type = event.event_id, event.type
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # Signed by the provider but not readable here: keep it for an operator.
        event_id = "sha256:" + hashlib.sha256(body).hexdigest()
        event_type, status, error = "unreadable", "failed", f"unreadable event: {exc!r}"
    dialect = postgresql if p.db.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(webhook_inbox).values(
        provider=provider_name, event_id=event_id[:255], event_type=event_type[:64],
        body=body, status=status, attempts=0, next_attempt_at=now, last_error=error,
        received_at=now,
    ).on_conflict_do_nothing(index_elements=["provider", "event_id"])
    async with p.db.begin() as conn:
        inserted = await conn.execute(stmt.returning(webhook_inbox.c.id))
        new_id = inserted.scalar()
        if new_id is None:
            new_id = (await conn.execute(select(webhook_inbox.c.id).where(
                webhook_inbox.c.provider == provider_name,
                webhook_inbox.c.event_id == event_id[:255]))).scalar_one()
            return int(new_id), True
    return int(new_id), False


async def apply_event(p: svc.Payments, provider: str, event: ProviderEvent) -> tuple[str,
                                                                                    str | None]:
    """Apply one event to its order; returns (inbox status, order id).
    Raises NotReady (or a transient error) to be retried later."""
    if event.kind == "ignored":
        return "ignored", None
    if not (event.order_id or event.provider_order_id or event.provider_payment_id):
        raise NeedsOperator("the event names no order or payment")
    async with p.db.connect() as conn:
        order = await svc.find_order(conn, provider, order_id=event.order_id,
                                     provider_order_id=event.provider_order_id,
                                     provider_payment_id=event.provider_payment_id)
    if order is None:
        raise svc.NotReady("no order matches this event (yet)")
    oid = order.id
    if event.kind == "payment_succeeded":
        await svc.credit(p, oid, payment_id=event.provider_payment_id, amount=event.amount,
                         currency=event.currency)
    elif event.kind == "payment_pending":
        await svc.set_status(p.db, oid, "pending", when=("created",),
                             extra={"provider_payment_id": event.provider_payment_id})
    elif event.kind == "payment_failed":
        await svc.set_status(p.db, oid, "failed", when=svc.OPEN, credited=False)
    elif event.kind == "refunded":
        if not event.full:
            raise NeedsOperator("a partial refund: the order's coins were not taken back; "
                                "an operator decides")
        await svc.reverse(p, oid, "refunded")
    elif event.kind == "dispute_opened":
        if order.credit_transaction_id is None:
            raise svc.NotReady("the order has not been credited yet")
        await svc.set_status(p.db, oid, "disputed", when=("succeeded",), credited=True)
    elif event.kind == "dispute_won":
        await svc.set_status(p.db, oid, "succeeded", when=("disputed",), credited=True)
    elif event.kind == "dispute_lost":
        await svc.reverse(p, oid, "disputed")
    return "processed", oid


def backoff_s(attempts: int) -> float:
    return float(min(2 ** max(attempts - 1, 0), BACKOFF_MAX_S))


async def process_due(p: svc.Payments, *, now: datetime | None = None,
                      limit: int = BATCH) -> int:
    """Apply the events that are due; returns how many this call leased."""
    now = now or datetime.now(UTC)
    w = webhook_inbox.c
    due = (w.status == "received") & (w.next_attempt_at <= now) & or_(
        w.locked_until.is_(None), w.locked_until < now)
    async with p.db.connect() as conn:
        ids = (await conn.execute(select(w.id).where(due).order_by(w.id).limit(limit))
               ).scalars().all()
    leased = 0
    for event_id in ids:
        async with p.db.begin() as conn:
            got = await conn.execute(update(webhook_inbox).where(w.id == event_id, due).values(
                locked_until=now + timedelta(seconds=LEASE_S), attempts=w.attempts + 1))
            if not got.rowcount:
                continue  # another worker has it
            row = (await conn.execute(select(webhook_inbox).where(w.id == event_id))).one()
        leased += 1
        await _process(p, row, now)
    return leased


async def _process(p: svc.Payments, row: Row[Any], now: datetime) -> None:
    w = webhook_inbox.c
    values: dict[str, Any] = {"locked_until": None}
    try:
        provider = svc.providers(p.settings)[row.provider]
        event = provider.parse_event(bytes(row.body), {})
        status, order_id = await apply_event(p, row.provider, event)
        values.update(status=status, order_id=order_id, processed_at=datetime.now(UTC),
                      last_error=None)
    except (NeedsOperator, PaymentNotCompleted) as exc:  # retrying cannot help
        values.update(status="failed", last_error=f"{type(exc).__name__}: {exc}"[:1000])
    except (TimeoutError, svc.NotReady, CoinpurseError) as exc:
        values.update(_retry(p.settings, row.attempts, now, f"{type(exc).__name__}: {exc}"))
    except Exception as exc:
        log.exception("webhook event %s failed", row.id)
        values.update(_retry(p.settings, row.attempts, now, f"{type(exc).__name__}: {exc}"))
    async with p.db.begin() as conn:
        await conn.execute(update(webhook_inbox).where(w.id == row.id).values(**values))


def _retry(settings: Settings, attempts: int, now: datetime, error: str) -> dict[str, Any]:
    if attempts >= settings.inbox_max_attempts:
        return {"status": "failed", "last_error": f"gave up after {attempts} attempts: "
                f"{error}"[:1000]}
    return {"next_attempt_at": now + timedelta(seconds=backoff_s(attempts)),
            "last_error": error[:1000]}


async def retry_event(p: svc.Payments, event_id: int, admin: Principal,
                      ip: str | None) -> Row[Any]:
    """An operator sends a failed event round again (audited in the same transaction)."""
    w = webhook_inbox.c
    async with p.db.begin() as conn:
        row = (await conn.execute(select(webhook_inbox).where(w.id == event_id))).first()
        if row is None:
            raise NotFound(f"no webhook event {event_id}")
        await conn.execute(update(webhook_inbox).where(w.id == event_id, w.status == "failed")
                           .values(status="received", next_attempt_at=datetime.now(UTC),
                                   attempts=0, locked_until=None))
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="webhook_event.retry", target=f"webhook_event:{event_id}",
                           details={"status_before": row.status}, ip=ip)
        row = (await conn.execute(select(webhook_inbox).where(w.id == event_id))).one()
    return row


def event_view(r: Row[Any], *, with_body: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": r.id, "provider": r.provider, "event_id": r.event_id,
        "event_type": r.event_type, "status": r.status, "attempts": r.attempts,
        "next_attempt_at": iso(r.next_attempt_at), "last_error": r.last_error,
        "order_id": r.order_id, "received_at": iso(r.received_at),
        "processed_at": iso(r.processed_at),
    }
    if with_body:
        try:
            view["body"] = orjson.loads(bytes(r.body))
        except orjson.JSONDecodeError:
            view["body"] = bytes(r.body).decode(errors="replace")
    return view
