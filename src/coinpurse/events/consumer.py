"""Internal consumers of the event log (webhook fan-out, notifications), each exactly once.

A consumer's pass is one database transaction: lock its cursor row, read the next events,
write what they cause, advance the cursor, commit. A crash before the commit leaves nothing
behind and the next pass reads the same events again; a commit moves the cursor together
with the rows. Only one process consumes a given cursor at a time: the others find the row
locked and skip their pass (PostgreSQL); SQLite has one writer anyway.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.clock import utcnow
from coinpurse.core.db import read_connection
from coinpurse.events import repository
from coinpurse.events.repository import StoredEvent
from coinpurse.events.service import TypeFilter

Handler = Callable[[AsyncConnection, list[StoredEvent]], Awaitable[None]]
PAGE = 500


async def _worth_a_pass(db: AsyncEngine, name: str, types: TypeFilter, wanted: bool) -> bool:
    """A read (no lock, no transaction id): is anything new for this consumer? When only
    other types are new (or it wants nothing now), the cursor still moves past them, but
    at most every few seconds."""
    async with read_connection(db) as conn:
        after = await repository.position(conn, name)
        head = await repository.head(conn)
        if head <= after:
            return False
        if wanted and await repository.read(conn, after=after, limit=1, types=types.exact,
                                            prefixes=types.prefixes, upto=head):
            return True
    now = time.monotonic()
    if now - _moved.get(name, 0.0) < SKIP_AHEAD_S:
        return False
    _moved[name] = now
    return True


_moved: dict[str, float] = {}
SKIP_AHEAD_S = 5.0


async def consume(db: AsyncEngine, name: str, handle: Handler, *,
                  types: TypeFilter = TypeFilter(), limit: int = PAGE,
                  wanted: bool = True) -> int:
    """One pass; returns how many events it handled (0 if another process holds it, or
    there was nothing to do). ``wanted=False``: nothing would come of the events now (no
    webhook endpoint): only move the cursor on, now and then."""
    if not await _worth_a_pass(db, name, types, wanted):
        return 0
    async with db.begin() as conn:
        now = utcnow()
        after = await repository.try_cursor(conn, name, now)
        if after is None:
            return 0
        # Every id up to ``head`` belongs to a finished transaction, so when fewer than
        # ``limit`` events of our types are found, none can appear up to head later: the
        # cursor jumps there instead of rescanning the other types' rows next time.
        head = await repository.head(conn)
        found = await repository.read(conn, after=after, limit=limit, types=types.exact,
                                      prefixes=types.prefixes, upto=head)
        if found:
            await handle(conn, found)
        last = found[-1].id if len(found) == limit else head
        if last > after:
            await repository.advance(conn, name, last, now)
    return len(found)


async def drain(db: AsyncEngine, name: str, handle: Handler, *,
                types: TypeFilter = TypeFilter(), limit: int = PAGE,
                wanted: bool = True) -> int:
    """Passes until caught up."""
    total = 0
    while (n := await consume(db, name, handle, types=types, limit=limit,
                              wanted=wanted)) > 0:
        total += n
        if n < limit:
            break
    return total
