"""Read routing: wallet histories from a standby (``COINPURSE_READ_DATABASE_URL``), off by
default, without ever showing a wallet older than the primary has it.

The rule: a history page is read on the standby only if the standby has replayed every
change of that wallet that the primary has. The check costs one indexed read of the
wallet's account rows on the primary: each balance change rewrites the account row in the
same transaction as its entries, so equal row versions (``xmin``, the same on a physical
standby as on its primary) mean the standby holds every entry of that wallet. Otherwise,
or if the standby cannot be reached, the primary answers. So a user always sees their own
transfer in their history the moment it is acknowledged, and the standby takes the scans.

Balances are always read on the primary: they are the single-row reads that users act on
and that a standby would save nothing on. Everything that decides money (the ledger,
idempotency, holds, limits) runs on the primary as before.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.cluster import faults

log = logging.getLogger("coinpurse.reads")

_VERSIONS = text(
    "SELECT currency, xmin::text AS v FROM accounts WHERE address = :a ORDER BY currency")


async def _versions(conn: AsyncConnection, address: str) -> list[tuple[str, str]]:
    if conn.dialect.name != "postgresql":  # pragma: no cover - settings refuse it
        return []
    return [(r.currency, r.v) for r in (await conn.execute(_VERSIONS, {"a": address})).all()]


@contextlib.asynccontextmanager
async def for_wallet(primary: AsyncEngine, standby: AsyncEngine | None,
                     address: str) -> AsyncIterator[AsyncConnection]:
    """A read connection for ``address``'s history: the standby if it is up to date for
    that wallet, else the primary."""
    if standby is not None:
        async with primary.connect() as conn:
            wanted = await _versions(conn, address)
        fresh = None
        try:
            fresh = await standby.connect().start()
            if await _versions(fresh, address) != wanted:
                await fresh.close()
                fresh = None  # behind for this wallet: the primary answers
        except Exception as exc:
            if not faults.is_transient(exc):
                raise
            log.warning("standby unavailable, reading on the primary: %r", exc)
            if fresh is not None:
                with contextlib.suppress(Exception):
                    await fresh.close()
            fresh = None
        if fresh is not None:
            try:
                yield fresh
            finally:
                await fresh.close()
            return
    async with primary.connect() as conn:
        yield conn
