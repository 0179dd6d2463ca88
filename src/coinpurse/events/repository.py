"""The only SQL on the event log and the tables of what reads it.

The commit-order problem: on PostgreSQL a transaction that took a sequence number first may
commit last, so a reader following ``id > cursor`` would skip its rows for ever. Here an
event's id is ``(writing transaction id << 24) + its ordinal in that transaction``, and a
reader only sees ids below ``pg_snapshot_xmin(pg_current_snapshot()) << 24``: every
transaction with an id below that horizon has ended (committed or rolled back), so no row
can ever appear behind a cursor. A reader therefore sees every event exactly once, in one
order, whatever the number of writing processes; an event waits for the writers that began
before it to finish (milliseconds, unless a writer is stuck in a transaction).

On SQLite there is one writer at a time: ids autoincrement in commit order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Row,
    and_,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from coinpurse.core.db import array_rows, is_postgres, keys_match
from coinpurse.core.db import insert as upsert
from coinpurse.core.pages import newest_first
from coinpurse.events.tables import (
    balance_monitors,
    email_outbox,
    event_cursors,
    events,
    notifications,
    webhook_deliveries,
    webhook_endpoints,
)

ORDINAL_BITS = 24
ORDINAL_MAX = (1 << ORDINAL_BITS) - 1
_ORDINAL_KEY = "coinpurse_event_ordinal"


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    type: str
    created_at: datetime
    data: dict[str, Any]


# One round trip: the rows, and a NOTIFY that every listening process receives at commit
# (the live stream's pumps and the consumers wake on it; identical notifications of one
# transaction are delivered once).
CHANNEL = "coinpurse_events"
_PG_EVENTS = (
    "WITH written AS (INSERT INTO events (id, type, created_at, data_json) "
    "SELECT (pg_current_xact_id()::text::bigint << 24) + t.n, t.type, :at, t.data "
    "FROM unnest(CAST(:n AS BIGINT[]), CAST(:type AS TEXT[]), CAST(:data AS TEXT[])) "
    "AS t(n, type, data)) ")
_PG_INSERT = text(_PG_EVENTS + f"SELECT pg_notify('{CHANNEL}', '')")
# The same, and the balance monitors of the given accounts (as ``monitors_for``): their rows,
# then one row of NULLs from the branch that notifies (a UNION ALL runs every branch).
_PG_INSERT_FINDING_MONITORS = text(
    _PG_EVENTS
    + "SELECT m.id, m.address, m.currency, m.condition, m.amount, m.description, m.service, "
    "m.created_at FROM balance_monitors AS m JOIN unnest(CAST(:addresses AS TEXT[]), "
    "CAST(:currencies AS TEXT[])) AS w(address, currency) "
    "ON m.address = w.address AND m.currency = w.currency "
    "UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
    f"FROM (SELECT pg_notify('{CHANNEL}', '')) AS notified ORDER BY id"
).columns(*balance_monitors.c)
_PG_HORIZON = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 24)"


def _ordinals(conn: AsyncConnection, count: int) -> list[int]:
    """The next ``count`` ordinals of this database transaction (from 1)."""
    marker = id(conn.get_transaction())
    last_marker, last = conn.info.get(_ORDINAL_KEY, (None, 0))
    start = last if last_marker == marker else 0
    assert start + count <= ORDINAL_MAX, "too many events in one transaction"
    conn.info[_ORDINAL_KEY] = (marker, start + count)
    return list(range(start + 1, start + count + 1))


async def append(conn: AsyncConnection, new: Sequence[NewEvent], at: datetime) -> None:
    """Write events in the caller's transaction: they commit, or not, with its change."""
    if not new:
        return
    payloads = [orjson.dumps(e.data).decode() for e in new]
    if is_postgres(conn):
        await conn.execute(_PG_INSERT, {
            "n": _ordinals(conn, len(new)), "type": [e.type for e in new],
            "data": payloads, "at": at})
        return
    await conn.execute(insert(events), [
        {"type": e.type, "created_at": at, "data_json": p} for e, p in zip(new, payloads,
                                                                            strict=True)])


async def append_finding_monitors(conn: AsyncConnection, new: Sequence[NewEvent], at: datetime,
                                  keys: Iterable[tuple[str, str]]) -> list[Row[Any]]:
    """``append``, and ``monitors_for(keys)``: on PostgreSQL in one statement (the ledger's
    outbox writes a batch's events and looks its monitors up in one round trip)."""
    wanted = sorted(set(keys))
    if not is_postgres(conn) or not new or not wanted:
        await append(conn, new, at)
        return await monitors_for(conn, wanted)
    rows = (await conn.execute(_PG_INSERT_FINDING_MONITORS, {
        "n": _ordinals(conn, len(new)), "type": [e.type for e in new],
        "data": [orjson.dumps(e.data).decode() for e in new], "at": at,
        "addresses": [a for a, _ in wanted], "currencies": [c for _, c in wanted]})).all()
    return [r for r in rows if r.id is not None]


async def read(conn: AsyncConnection, *, after: int, limit: int,
               types: Sequence[str] = (), prefixes: Sequence[str] = (),
               upto: int | None = None) -> list[StoredEvent]:
    """Events after ``after`` that no running transaction can still add to, oldest first.

    ``types`` are exact event types, ``prefixes`` match ``topup.*`` style patterns; with
    neither, every type. ``upto``: none above that id (a ``head()`` read before)."""
    stmt = select(events).where(events.c.id > after).order_by(events.c.id).limit(limit)
    if upto is not None:
        stmt = stmt.where(events.c.id <= upto)
    if is_postgres(conn):
        stmt = stmt.where(events.c.id < text(_PG_HORIZON))
    wanted: list[ColumnElement[bool]] = [events.c.type.in_(list(types))] if types else []
    wanted += [events.c.type.startswith(p, autoescape=True) for p in prefixes]
    if wanted:
        stmt = stmt.where(or_(*wanted))
    rows = (await conn.execute(stmt)).all()
    return [StoredEvent(r.id, r.type, r.created_at, orjson.loads(r.data_json)) for r in rows]


async def posted_transactions(conn: AsyncConnection, *, after: int, limit: int
                              ) -> list[tuple[int, str]]:
    """(event id, transaction id) of the ``transaction.posted`` events after ``after``,
    oldest first, with ``read``'s guarantee: the ledger's sealer follows these. The id is
    taken out of the JSON by the database: no event body crosses the wire."""
    if is_postgres(conn):
        tx_id: Any = cast(events.c.data_json, JSON)["id"].as_string()
    else:
        tx_id = func.json_extract(events.c.data_json, "$.id")
    stmt = (select(events.c.id, tx_id).where(events.c.id > after,
                                             events.c.type == "transaction.posted")
            .order_by(events.c.id).limit(limit))
    if is_postgres(conn):
        stmt = stmt.where(events.c.id < text(
            "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 24)"))
    return [(int(r[0]), str(r[1])) for r in (await conn.execute(stmt)).all()]


async def delete_before(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest events created before ``cutoff``."""
    ids = (await conn.execute(select(events.c.id).where(events.c.created_at < cutoff)
                              .order_by(events.c.id).limit(limit))).scalars().all()
    if ids:
        await conn.execute(delete(events).where(events.c.id.in_(list(ids))))
    return len(ids)


async def delete_done_before(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` finished webhook deliveries and e-mails created before
    ``cutoff`` (pending ones stay: they are still being tried)."""
    total = 0
    for table in (webhook_deliveries, email_outbox):
        ids = (await conn.execute(select(table.c.id).where(
            table.c.created_at < cutoff, table.c.status != "pending").limit(limit))
        ).scalars().all()
        if ids:
            await conn.execute(delete(table).where(table.c.id.in_(list(ids))))
        total += len(ids)
    return total


async def head(conn: AsyncConnection) -> int:
    """The newest event id a reader may see now (0 for an empty log)."""
    stmt = select(func.max(events.c.id))
    if is_postgres(conn):
        stmt = stmt.where(events.c.id < text(_PG_HORIZON))
    return int((await conn.execute(stmt)).scalar() or 0)


async def cursor(conn: AsyncConnection, name: str, at: datetime, *, lock: bool) -> int:
    """A consumer's position; with ``lock``, held until the transaction ends, so that two
    processes never consume the same events at once (the other waits, then goes on)."""
    await conn.execute(upsert(conn, event_cursors).values(
        name=name, after_id=0, updated_at=at).on_conflict_do_nothing(
        index_elements=["name"]))
    stmt = select(event_cursors.c.after_id).where(event_cursors.c.name == name)
    if lock:
        stmt = stmt.with_for_update()
    return int((await conn.execute(stmt)).scalar_one())


async def position(conn: AsyncConnection, name: str) -> int:
    """A consumer's position, read without locking (0 before its first pass)."""
    found = (await conn.execute(select(event_cursors.c.after_id).where(
        event_cursors.c.name == name))).scalar()
    return int(found or 0)


async def try_cursor(conn: AsyncConnection, name: str, at: datetime) -> int | None:
    """A consumer's position, locked until the transaction ends; None when another process
    holds it (that one is consuming: this one has nothing to do)."""
    stmt = select(event_cursors.c.after_id).where(event_cursors.c.name == name)
    if is_postgres(conn):
        stmt = stmt.with_for_update(skip_locked=True)
    found = (await conn.execute(stmt)).scalar()
    if found is not None:
        return int(found)
    exists = (await conn.execute(select(event_cursors.c.name).where(
        event_cursors.c.name == name))).first()
    if exists is not None:
        return None  # locked by another consumer
    return await cursor(conn, name, at, lock=True)


async def advance(conn: AsyncConnection, name: str, after_id: int, at: datetime) -> None:
    await conn.execute(event_cursors.update().where(event_cursors.c.name == name)
                       .values(after_id=after_id, updated_at=at))


async def by_ids(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, StoredEvent]:
    if not ids:
        return {}
    rows = (await conn.execute(select(events).where(events.c.id.in_(list(ids))))).all()
    return {r.id: StoredEvent(r.id, r.type, r.created_at, orjson.loads(r.data_json))
            for r in rows}


# ------------------------------------------------------------------- webhook endpoints

E = webhook_endpoints.c
D = webhook_deliveries.c


async def count_endpoints(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(webhook_endpoints)))
               .scalar_one())


async def insert_endpoint(conn: AsyncConnection, row: dict[str, Any]) -> None:
    await conn.execute(webhook_endpoints.insert().values(**row))


async def endpoint(conn: AsyncConnection, endpoint_id: str, *,
                   lock: bool = False) -> Row[Any] | None:
    stmt = select(webhook_endpoints).where(E.id == endpoint_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).first()


async def endpoints_page(db: AsyncEngine, before: str | None,
                         limit: int) -> tuple[list[Row[Any]], str | None]:
    return await newest_first(db, webhook_endpoints, equal={}, before=before, limit=limit)


async def update_endpoint(conn: AsyncConnection, endpoint_id: str,
                          values: dict[str, Any]) -> None:
    await conn.execute(update(webhook_endpoints).where(E.id == endpoint_id).values(**values))


async def delete_endpoint(conn: AsyncConnection, endpoint_id: str) -> None:
    # Explicitly, for SQLite connections opened without foreign keys enforced.
    await conn.execute(delete(webhook_deliveries).where(D.endpoint_id == endpoint_id))
    await conn.execute(delete(webhook_endpoints).where(E.id == endpoint_id))


async def any_enabled_endpoint(conn: AsyncConnection) -> bool:
    return (await conn.execute(select(E.id).where(E.enabled.is_(True)).limit(1))).first() \
        is not None


async def enabled_endpoints(conn: AsyncConnection) -> list[Row[Any]]:
    return list((await conn.execute(select(webhook_endpoints).where(
        E.enabled.is_(True)).order_by(E.id))).all())


# ------------------------------------------------------------------- webhook deliveries


async def insert_deliveries(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Exactly once per (endpoint, event), also if a consumer ran a page twice."""
    if rows:
        await conn.execute(upsert(conn, webhook_deliveries).on_conflict_do_nothing(
            index_elements=["endpoint_id", "event_id"]), rows)


def _due(table: Any, now: datetime) -> ColumnElement[bool]:
    c = table.c
    return and_(c.status == "pending", c.next_attempt_at <= now,
                or_(c.locked_until.is_(None), c.locked_until < now))


async def claim_deliveries(conn: AsyncConnection, *, now: datetime, until: datetime,
                           token: str, limit: int) -> list[Row[Any]]:
    """Lease up to ``limit`` due deliveries of enabled endpoints to this sender (one
    statement; on PostgreSQL rows another sender is claiming are skipped, not waited for)."""
    pick = (select(D.id).where(_due(webhook_deliveries, now), D.endpoint_id.in_(
        select(E.id).where(E.enabled.is_(True)))).order_by(D.next_attempt_at).limit(limit))
    if is_postgres(conn):
        pick = pick.with_for_update(skip_locked=True)
    stmt = (update(webhook_deliveries).where(D.id.in_(pick.scalar_subquery()))
            .values(locked_until=until, lease_token=token, attempts=D.attempts + 1,
                    updated_at=now)
            .returning(*webhook_deliveries.c))
    return list((await conn.execute(stmt)).all())


async def endpoints_by_ids(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, Row[Any]]:
    if not ids:
        return {}
    rows = (await conn.execute(select(webhook_endpoints).where(E.id.in_(list(ids))))).all()
    return {r.id: r for r in rows}


async def finish_delivery(conn: AsyncConnection, delivery_id: str, token: str,
                          values: dict[str, Any]) -> bool:
    """Record an attempt, if this sender still holds the lease."""
    result = await conn.execute(update(webhook_deliveries).where(
        D.id == delivery_id, D.lease_token == token).values(
        **values, locked_until=None, lease_token=None))
    return bool(result.rowcount)


async def deliveries_page(db: AsyncEngine, endpoint_id: str, status: str | None,
                          before: str | None, limit: int) -> tuple[list[Row[Any]], str | None]:
    return await newest_first(db, webhook_deliveries,
                              equal={"endpoint_id": endpoint_id, "status": status},
                              before=before, limit=limit)


async def delivery(conn: AsyncConnection, endpoint_id: str,
                   delivery_id: str) -> Row[Any] | None:
    return (await conn.execute(select(webhook_deliveries).where(
        D.id == delivery_id, D.endpoint_id == endpoint_id))).first()


async def requeue_delivery(conn: AsyncConnection, delivery_id: str, *, now: datetime,
                           expires_at: datetime) -> None:
    await conn.execute(update(webhook_deliveries).where(D.id == delivery_id).values(
        status="pending", next_attempt_at=now, expires_at=expires_at, locked_until=None,
        lease_token=None, updated_at=now))


# ------------------------------------------------------------------- notifications

N = notifications.c
M = email_outbox.c


async def insert_notifications(conn: AsyncConnection,
                               rows: list[dict[str, Any]]) -> list[str]:
    """The ids of the rows inserted now (an (event, user) pair already there is skipped)."""
    made = []
    for row in rows:  # a few per event; RETURNING with ON CONFLICT is per row on SQLite
        result = await conn.execute(upsert(conn, notifications).values(**row)
                                    .on_conflict_do_nothing(index_elements=["event_id",
                                                                            "user_id"])
                                    .returning(N.id))
        made += list(result.scalars())
    return made


async def notifications_page(db: AsyncEngine, user_id: str, unread: bool,
                             before: str | None, limit: int
                             ) -> tuple[list[Row[Any]], str | None]:
    stmt = select(notifications).where(N.user_id == user_id).order_by(N.id.desc()) \
        .limit(limit + 1)
    if unread:
        stmt = stmt.where(N.read_at.is_(None))
    if before is not None:
        stmt = stmt.where(N.id < before)
    async with db.connect() as conn:
        rows = list((await conn.execute(stmt)).all())
    more = len(rows) > limit
    return rows[:limit], (rows[limit - 1].id if more else None)


async def unread_count(conn: AsyncConnection, user_id: str) -> int:
    return int((await conn.execute(select(func.count()).select_from(notifications).where(
        N.user_id == user_id, N.read_at.is_(None)))).scalar_one())


async def mark_read(conn: AsyncConnection, user_id: str, notification_id: str,
                    now: datetime) -> Row[Any] | None:
    await conn.execute(update(notifications).where(
        N.id == notification_id, N.user_id == user_id, N.read_at.is_(None)).values(read_at=now))
    return (await conn.execute(select(notifications).where(
        N.id == notification_id, N.user_id == user_id))).first()


async def mark_all_read(conn: AsyncConnection, user_id: str, now: datetime) -> int:
    result = await conn.execute(update(notifications).where(
        N.user_id == user_id, N.read_at.is_(None)).values(read_at=now))
    return int(result.rowcount)


async def insert_emails(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(upsert(conn, email_outbox).on_conflict_do_nothing(
            index_elements=["notification_id"]), rows)


async def claim_emails(conn: AsyncConnection, *, now: datetime, until: datetime, token: str,
                       limit: int) -> list[tuple[Row[Any], Row[Any]]]:
    """Lease due e-mails to this sender; each with its notification."""
    pick = select(M.id).where(_due(email_outbox, now)).order_by(M.next_attempt_at).limit(limit)
    if is_postgres(conn):
        pick = pick.with_for_update(skip_locked=True)
    leased = (await conn.execute(update(email_outbox).where(M.id.in_(pick.scalar_subquery()))
                                 .values(locked_until=until, lease_token=token,
                                         attempts=M.attempts + 1)
                                 .returning(*email_outbox.c))).all()
    if not leased:
        return []
    found = {r.id: r for r in (await conn.execute(select(notifications).where(
        N.id.in_([m.notification_id for m in leased])))).all()}
    return [(m, found[m.notification_id]) for m in leased if m.notification_id in found]


async def finish_email(conn: AsyncConnection, email_id: str, token: str,
                       values: dict[str, Any]) -> None:
    await conn.execute(update(email_outbox).where(M.id == email_id, M.lease_token == token)
                       .values(**values, locked_until=None, lease_token=None))


async def email(conn: AsyncConnection, notification_id: str) -> Row[Any] | None:
    return (await conn.execute(select(email_outbox).where(
        M.notification_id == notification_id))).first()


# ------------------------------------------------------------------- balance monitors

B = balance_monitors.c


async def insert_monitor(conn: AsyncConnection, row: dict[str, Any]) -> None:
    await conn.execute(balance_monitors.insert().values(**row))


async def count_monitors(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(balance_monitors)))
               .scalar_one())


async def monitors_page(db: AsyncEngine, address: str | None, currency: str | None,
                        before: str | None, limit: int) -> tuple[list[Row[Any]], str | None]:
    return await newest_first(db, balance_monitors,
                              equal={"address": address, "currency": currency},
                              before=before, limit=limit)


async def delete_monitor(conn: AsyncConnection, monitor_id: str) -> bool:
    result = await conn.execute(delete(balance_monitors).where(B.id == monitor_id))
    return bool(result.rowcount)


async def monitors_for(conn: AsyncConnection,
                       keys: Iterable[tuple[str, str]]) -> list[Row[Any]]:
    """The monitors on these (address, currency) accounts: one indexed query."""
    wanted = sorted(set(keys))
    if not wanted:
        return []
    if is_postgres(conn):  # every batch asks: one statement compiled once, arrays bound
        return list((await conn.execute(_PG_MONITORS_FOR, {
            "addresses": [a for a, _ in wanted], "currencies": [c for _, c in wanted]})).all())
    return list((await conn.execute(select(balance_monitors).where(
        keys_match(B.address, B.currency, wanted)).order_by(B.id))).all())


_WANTED = array_rows(address="addresses", currency="currencies")
_PG_MONITORS_FOR = (select(balance_monitors)
                    .join(_WANTED, and_(B.address == _WANTED.c.address,
                                        B.currency == _WANTED.c.currency))
                    .order_by(B.id))
