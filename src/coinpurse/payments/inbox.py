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
from datetime import datetime, timedelta
from typing import Any

from coinpurse.auth.tokens import Principal
from coinpurse.core import audit
from coinpurse.core.clock import utcnow
from coinpurse.core.errors import CoinpurseError, NotFound
from coinpurse.payments import credits
from coinpurse.payments import repository as repo
from coinpurse.payments import service as svc
from coinpurse.payments.errors import InvalidSignature, PaymentNotCompleted
from coinpurse.payments.model import OPEN, InboxEvent
from coinpurse.payments.providers.base import ProviderEvent, SignatureError
from coinpurse.payments.providers.registry import providers

log = logging.getLogger("coinpurse.payments.inbox")
LEASE_S = 60
BACKOFF_MAX_S = 3600
BATCH = 50
ERROR_MAX_CHARS = 1000


class NeedsOperator(Exception):
    """Retrying cannot help (a partial refund, an event naming no order): the event is
    marked failed for an operator."""


async def ingest(p: svc.Payments, provider_name: str, body: bytes,
                 headers: Mapping[str, str]) -> tuple[int, bool]:
    """Check the signature and store the event; returns (inbox id, duplicate)."""
    registry = providers(p.settings)
    if provider_name not in registry:
        raise NotFound(f"no webhook endpoint for {provider_name!r}")
    provider = registry[provider_name]
    try:
        provider.verify_webhook(body, headers)
    except SignatureError as exc:  # the adapters' own words, never the SDK's
        raise InvalidSignature(str(exc)) from None
    status, error = "received", None
    try:
        event = provider.parse_event(body, headers)
        event_id, event_type = event.event_id, event.type
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # Signed by the provider but not readable here: keep it for an operator.
        log.warning("unreadable %s event: %r", provider_name, exc)
        event_id = "sha256:" + hashlib.sha256(body).hexdigest()
        event_type, status, error = "unreadable", "failed", _unreadable(exc)
    async with p.db.begin() as conn:
        return await repo.insert_event(
            conn, provider=provider_name, event_id=event_id[:255], event_type=event_type[:64],
            body=body, status=status, error=error, now=utcnow())


def _unreadable(exc: Exception) -> str:
    """Why an event could not be read, in our words (the parser's are in the log)."""
    if isinstance(exc, ValueError):
        return "unreadable event: the body is not JSON, or a value has the wrong form"
    return "unreadable event: a field the event needs is missing or of the wrong type"


async def apply_event(p: svc.Payments, provider: str, event: ProviderEvent) -> tuple[str,
                                                                                    str | None]:
    """Apply one event to its order; returns (inbox status, order id).
    Raises NotReady (or a transient error) to be retried later."""
    if event.kind == "ignored":
        return "ignored", None
    if not (event.order_id or event.provider_order_id or event.provider_payment_id):
        raise NeedsOperator("the event names no order or payment")
    order = await svc.find_order(p.db, provider, order_id=event.order_id,
                                 provider_order_id=event.provider_order_id,
                                 provider_payment_id=event.provider_payment_id)
    if order is None:
        raise svc.NotReady("no order matches this event (yet)")
    oid = order.id
    if event.kind == "payment_succeeded":
        await credits.credit(p, oid, payment_id=event.provider_payment_id,
                             amount=event.amount, currency=event.currency)
    elif event.kind == "payment_pending":
        await svc.set_status(p.db, oid, "pending", when=("created",),
                             extra={"provider_payment_id": event.provider_payment_id})
    elif event.kind == "payment_failed":
        await svc.set_status(p.db, oid, "failed", when=OPEN, credited=False)
    elif event.kind == "refunded":
        if not event.full:
            raise NeedsOperator("a partial refund: the order's coins were not taken back; "
                                "an operator decides")
        await credits.reverse(p, oid, "refunded")
    elif event.kind == "dispute_opened":
        if order.transaction_id is None:
            raise svc.NotReady("the order has not been credited yet")
        await svc.set_status(p.db, oid, "disputed", when=("succeeded",), credited=True)
    elif event.kind == "dispute_won":
        await svc.set_status(p.db, oid, "succeeded", when=("disputed",), credited=True)
    elif event.kind == "dispute_lost":
        await credits.reverse(p, oid, "disputed")
    return "processed", oid


def backoff_s(attempts: int) -> float:
    return float(min(2 ** max(attempts - 1, 0), BACKOFF_MAX_S))


async def process_due(p: svc.Payments, *, now: datetime | None = None,
                      limit: int = BATCH) -> int:
    """Apply the events that are due; returns how many this call leased."""
    now = now or utcnow()
    async with p.db.connect() as conn:
        ids = await repo.due_event_ids(conn, now, limit)
    leased = 0
    for event_id in ids:
        async with p.db.begin() as conn:
            event = await repo.lease_event(conn, event_id, now=now,
                                           until=now + timedelta(seconds=LEASE_S))
        if event is None:
            continue  # another worker has it
        leased += 1
        await _process(p, event, now)
    return leased


async def _process(p: svc.Payments, event: InboxEvent, now: datetime) -> None:
    values: dict[str, Any]
    try:
        provider = providers(p.settings)[event.provider]
        parsed = provider.parse_event(event.raw_body, {})
        status, order_id = await apply_event(p, event.provider, parsed)
        values = {"status": status, "order_id": order_id, "processed_at": utcnow(),
                  "last_error": None}
    except (NeedsOperator, PaymentNotCompleted) as exc:  # retrying cannot help
        values = {"status": "failed",
                  "last_error": f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]}
    except (TimeoutError, svc.NotReady, CoinpurseError) as exc:
        values = _retry(p, event.attempts, now, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # the raw cause goes to the log; operators see its kind
        log.exception("webhook event %s failed", event.id)
        values = _retry(p, event.attempts, now,
                        f"{type(exc).__name__} (unexpected; the server log has the details)")
    async with p.db.begin() as conn:
        await repo.finish_event(conn, event.id, **values)


def _retry(p: svc.Payments, attempts: int, now: datetime, error: str) -> dict[str, Any]:
    if attempts >= p.settings.inbox_max_attempts:
        return {"status": "failed", "last_error": f"gave up after {attempts} attempts: "
                f"{error}"[:ERROR_MAX_CHARS]}
    return {"next_attempt_at": now + timedelta(seconds=backoff_s(attempts)),
            "last_error": error[:ERROR_MAX_CHARS]}


async def retry_event(p: svc.Payments, event_id: int, admin: Principal,
                      ip: str | None) -> InboxEvent:
    """An operator sends a failed event round again (audited in the same transaction)."""
    async with p.db.begin() as conn:
        before = await repo.get_event(conn, event_id)
        if before is None:
            raise NotFound(f"no webhook event {event_id}")
        await repo.requeue_failed_event(conn, event_id, utcnow())
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="webhook_event.retry", target=f"webhook_event:{event_id}",
                           details={"status_before": before.status}, ip=ip)
        after = await repo.get_event(conn, event_id)
    assert after is not None
    return after


async def get_event(p: svc.Payments, event_id: int) -> InboxEvent:
    async with p.db.connect() as conn:
        event = await repo.get_event(conn, event_id)
    if event is None:
        raise NotFound(f"no webhook event {event_id}")
    return event


async def list_events(p: svc.Payments, *, status: str | None, provider: str | None,
                      before: int | None, limit: int) -> tuple[list[InboxEvent], int | None]:
    return await repo.list_events(p.db, status=status, provider=provider, before=before,
                                  limit=limit)
