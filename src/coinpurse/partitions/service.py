"""Monthly partitions of the history tables on PostgreSQL (SQLite keeps plain tables).

``transactions``, ``entries`` and ``events`` are partitioned by month of ``created_at``
(migration 0113). The job (in every ``coinpurse serve`` and ``coinpurse worker``) and
``coinpurse migrate`` create the coming months ahead of time, so an insert never finds its
month missing; old months can be detached for archiving (``coinpurse partitions detach``).
A transaction and its entries carry the same ``created_at`` (the batch's time; so do the
events the ledger writes for it), so a month is detached from every history table at once
and a transaction never loses half of itself.

Adding a table: partition it by ``created_at`` in its migration (see 0113), with
``created_at`` in its primary key, and add its name to ``HISTORY_TABLES``.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.clock import utcnow
from coinpurse.core.cluster.faults import sqlstate
from coinpurse.partitions import repository as repo
from coinpurse.partitions.repository import Partition, add_months, partition_name

__all__ = ["AHEAD_MONTHS", "HISTORY_TABLES", "Partition", "add_months", "ahead",
           "detach_before", "ensure", "is_partitioned", "maintain", "month_of", "months",
           "partition_name"]

log = logging.getLogger("coinpurse.partitions")

# Partitioned by month of created_at, detached together.
HISTORY_TABLES: tuple[str, ...] = ("transactions", "entries", "events")
# The next month is made ahead (the job runs hourly); every month more is one more partition
# that each history query plans and opens, empty or not.
AHEAD_MONTHS = 1
INSUFFICIENT_PRIVILEGE = "42501"


def month_of(moment: date | datetime) -> date:
    return date(moment.year, moment.month, 1)


async def is_partitioned(conn: AsyncConnection, table: str = HISTORY_TABLES[0]) -> bool:
    return await repo.is_partitioned(conn, table)


async def months(conn: AsyncConnection) -> dict[str, list[Partition]]:
    """Each partitioned history table's attached months, oldest first."""
    return {t: await repo.attached(conn, t) for t in HISTORY_TABLES
            if await repo.is_partitioned(conn, t)}


async def ensure(conn: AsyncConnection, *, now: datetime | None = None,
                 ahead_months: int = AHEAD_MONTHS) -> list[str]:
    """Create the partitions of this month and the next ``ahead_months``; returns the new
    ones. Statement triggers added to a parent since its months were made are copied to
    them. Serialized by a transaction-scoped lock, so racing workers are harmless."""
    if not await repo.is_partitioned(conn, HISTORY_TABLES[0]):
        return []
    await repo.lock(conn)
    this = month_of(now or utcnow())
    created: list[str] = []
    for table, parts in (await months(conn)).items():
        have = {p.month for p in parts}
        for n in range(ahead_months + 1):
            month = add_months(this, n)
            if month not in have:
                await repo.create(conn, table, month)
                created.append(partition_name(table, month))
        await repo.copy_statement_triggers(conn, table)
    return created


async def detach_before(conn: AsyncConnection, before: date) -> list[str]:
    """Detach every month older than ``before`` from every history table, after recording
    each account's total of the detached entries (``archived_entry_totals``), so that
    ``coinpurse check`` still finds every balance equal to its entries. The detached tables
    stay in the database as plain tables (append-only still, if the parent's triggers make
    them so), for ``pg_dump -t`` and ``DROP TABLE``."""
    before = month_of(before)
    if before > month_of(utcnow()):
        raise ValueError("only months before the current one can be detached")
    await repo.lock(conn)
    detached: list[str] = []
    for table, parts in (await months(conn)).items():
        for p in parts:
            if p.month >= before:
                continue
            if table == "entries":
                await repo.archive_entry_totals(conn, p.name)
            await repo.detach(conn, table, p.name)
            detached.append(p.name)
    return detached


async def ahead(conn: AsyncConnection) -> int | None:
    """Whole months of partitions ready after the current one, in the table that has the
    fewest (-1: the current month is missing; None: not partitioned)."""
    found = await months(conn)
    if not found:
        return None
    this = month_of(utcnow())
    counts = []
    for parts in found.values():
        have = {p.month for p in parts}
        n = 0
        while add_months(this, n + 1) in have:
            n += 1
        counts.append(n if this in have else -1)
    return min(counts)


class NotOwner(Exception):
    """The job's role may not create partitions (it does not own the history tables)."""


async def maintain(db: AsyncEngine, *, now: datetime | None = None) -> list[str]:
    """One pass of the job: the coming months' partitions."""
    if db.dialect.name != "postgresql":
        return []
    try:
        async with db.begin() as conn:
            created = await ensure(conn, now=now)
    except DBAPIError as exc:
        if sqlstate(exc) != INSUFFICIENT_PRIVILEGE:
            raise
        # A least-privilege set-up (the service's role owns no table): the owner makes them.
        raise NotOwner("this database role may not create the history tables' partitions; "
                       "run `coinpurse migrate` or `coinpurse partitions ensure` as their "
                       "owner at least monthly") from None
    if created:
        log.info("created history partitions: %s", ", ".join(created))
    return created
