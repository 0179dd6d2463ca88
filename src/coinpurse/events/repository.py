"""The only SQL on the event log.

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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import delete, func, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from coinpurse.core.db import insert as upsert
from coinpurse.core.db import is_postgres
from coinpurse.events.tables import event_cursors, events

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


_PG_INSERT = text(
    "INSERT INTO events (id, type, created_at, data_json) "
    "SELECT (pg_current_xact_id()::text::bigint << 24) + t.n, t.type, :at, t.data "
    "FROM unnest(CAST(:n AS BIGINT[]), CAST(:type AS TEXT[]), CAST(:data AS TEXT[])) "
    "AS t(n, type, data)"
)


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


async def read(conn: AsyncConnection, *, after: int, limit: int,
               types: Sequence[str] = (), prefixes: Sequence[str] = ()) -> list[StoredEvent]:
    """Events after ``after`` that no running transaction can still add to, oldest first.

    ``types`` are exact event types, ``prefixes`` match ``topup.*`` style patterns; with
    neither, every type."""
    stmt = select(events).where(events.c.id > after).order_by(events.c.id).limit(limit)
    if is_postgres(conn):
        stmt = stmt.where(events.c.id < text(
            "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 24)"))
    wanted: list[ColumnElement[bool]] = [events.c.type.in_(list(types))] if types else []
    wanted += [events.c.type.startswith(p, autoescape=True) for p in prefixes]
    if wanted:
        stmt = stmt.where(or_(*wanted))
    rows = (await conn.execute(stmt)).all()
    return [StoredEvent(r.id, r.type, r.created_at, orjson.loads(r.data_json)) for r in rows]


async def head(conn: AsyncConnection) -> int:
    """The newest event id a reader may see now (0 for an empty log)."""
    stmt = select(func.max(events.c.id))
    if is_postgres(conn):
        stmt = stmt.where(events.c.id < text(
            "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 24)"))
    return int((await conn.execute(stmt)).scalar() or 0)


async def delete_before(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest events created before ``cutoff``."""
    ids = (await conn.execute(select(events.c.id).where(events.c.created_at < cutoff)
                              .order_by(events.c.id).limit(limit))).scalars().all()
    if ids:
        await conn.execute(delete(events).where(events.c.id.in_(list(ids))))
    return len(ids)


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


async def advance(conn: AsyncConnection, name: str, after_id: int, at: datetime) -> None:
    await conn.execute(event_cursors.update().where(event_cursors.c.name == name)
                       .values(after_id=after_id, updated_at=at))
