"""Read routing: reads from a standby (``COINPURSE_READ_DATABASE_URL``), off by default,
without ever showing data older than the primary has it.

The rule: a read goes to the standby only if the standby has replayed every change the read
depends on. The caller says what that is with a *probe*, a cheap query run on both servers
whose answers are equal exactly when the standby is up to date for this read. The wallets'
history probes the wallet's account versions (``accounts.version``, incremented by every
change of an account in the same transaction as its entries; a physical standby replays
whole transactions, so equal versions mean it holds every entry of that wallet). Otherwise,
or if the standby cannot be reached, the primary answers. So a user always sees their own
transfer the moment it is acknowledged, and the standby takes the scans.

A standby that could not be reached is left alone for ``RETRY_STANDBY_S`` seconds, so a
dead one costs one connection attempt per interval, not one per request.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.cluster import faults

log = logging.getLogger("coinpurse.reads")

RETRY_STANDBY_S = 5.0
Probe = Callable[[AsyncConnection], Awaitable[object]]


class ReadRouter:
    """The primary and, optionally, a standby for reads."""

    def __init__(self, primary: AsyncEngine, standby: AsyncEngine | None = None) -> None:
        self.primary = primary
        self.standby = standby
        self._skip_until = 0.0

    @contextlib.asynccontextmanager
    async def connect(self, probe: Probe) -> AsyncIterator[AsyncConnection]:
        """A read connection: the standby if ``probe`` answers there as on the primary,
        else the primary (the connection the probe ran on)."""
        if self.standby is None or time.monotonic() < self._skip_until:
            async with _read(self.primary) as conn:  # no BEGIN/ROLLBACK round trips
                yield conn
            return
        async with self.primary.connect() as conn:
            fresh = await self._standby_matching(probe, await probe(conn))
            if fresh is None:
                yield conn
                return
        try:
            yield fresh
        finally:
            await fresh.close()

    async def _standby_matching(self, probe: Probe, wanted: object) -> AsyncConnection | None:
        assert self.standby is not None
        conn: AsyncConnection | None = None
        try:
            conn = await self.standby.connect().start()
            if await probe(conn) == wanted:
                return conn
        except Exception as exc:
            await _close(conn)
            if not faults.is_transient(exc):
                raise
            log.warning("standby unavailable, reading on the primary for %.0f s: %r",
                        RETRY_STANDBY_S, exc)
            self._skip_until = time.monotonic() + RETRY_STANDBY_S
            return None
        await _close(conn)  # behind for this read: the primary answers
        return None


def _read(engine: AsyncEngine) -> AsyncConnection:
    """``Engine.read()`` (core.db, which imports this package: hence the duck typing)."""
    read = getattr(engine, "read", None)
    return read() if read is not None else engine.connect()


async def _close(conn: AsyncConnection | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.close()
