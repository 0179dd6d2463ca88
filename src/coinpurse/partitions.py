"""Monthly partitions of the history tables on PostgreSQL (SQLite keeps plain tables).

``transactions`` and ``entries`` are partitioned by month of ``created_at`` (migration
0100). The worker (and every ``coinpurse serve``) creates the partitions of the coming
months ahead of time, so an insert never finds its month missing; old months can be
detached for archiving (``coinpurse partitions detach``). A transaction and its entries
carry the same ``created_at`` (the batch's time), so a month is detached from every history
table at once and a transaction never loses half of itself.

Adding a table (the ``events`` outbox of issue 10): partition it by ``created_at`` in its
migration with :func:`partition_sql`, and add its name to ``HISTORY_TABLES``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("coinpurse.partitions")

# Partitioned by month of created_at, detached together.
HISTORY_TABLES: tuple[str, ...] = ("transactions", "entries")
# The next month is made ahead (the job runs hourly); every month more is one more partition
# that each history query plans and opens, empty or not.
AHEAD_MONTHS = 1
MAINTAIN_EVERY_S = 3600.0
LOCK_ID = 7_262_311_905  # one partition manager at a time (transaction-scoped)


def month_start(day: date | datetime) -> date:
    return date(day.year, day.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_y{month.year:04d}m{month.month:02d}"


def partition_sql(table: str, month: date) -> list[str]:
    """Statements that add ``month``'s partition to ``table`` without blocking writers:
    a plain table with the partition's CHECK, then ATTACH (a SHARE UPDATE EXCLUSIVE lock
    on the parent, which inserts do not conflict with; the CHECK spares the scan)."""
    name = partition_name(table, month)
    low, high = month.isoformat(), add_months(month, 1).isoformat()
    bound = (f"created_at IS NOT NULL AND created_at >= '{low} 00:00:00+00' "
             f"AND created_at < '{high} 00:00:00+00'")
    return [
        f"CREATE TABLE IF NOT EXISTS {name} (LIKE {table} INCLUDING DEFAULTS "
        f"INCLUDING CONSTRAINTS)",
        f"ALTER TABLE {name} ADD CONSTRAINT {name}_bound CHECK ({bound})",
        f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM "
        f"('{low} 00:00:00+00') TO ('{high} 00:00:00+00')",
        f"ALTER TABLE {name} DROP CONSTRAINT {name}_bound",
    ]


@dataclass(frozen=True, slots=True)
class Partition:
    table: str
    name: str
    month: date
    rows: int | None = None


async def is_partitioned(conn: AsyncConnection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    found = (await conn.execute(text(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = :t AND pg_table_is_visible(c.oid)"), {"t": table})).first()
    return found is not None


async def partitions(conn: AsyncConnection, table: str) -> list[Partition]:
    """The attached monthly partitions of ``table``, oldest first."""
    rows = (await conn.execute(text(
        "SELECT c.relname, c.reltuples::bigint AS n FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname = :t AND pg_table_is_visible(p.oid) ORDER BY c.relname"),
        {"t": table})).all()
    found = []
    for r in rows:
        stem = r.relname.removeprefix(f"{table}_y")
        if len(stem) == 7 and stem[4] == "m" and stem.replace("m", "").isdigit():
            month = date(int(stem[:4]), int(stem[5:]), 1)
            found.append(Partition(table, r.relname, month, max(int(r.n), 0)))
    return found


async def ensure(conn: AsyncConnection, *, now: datetime | None = None,
                 ahead_months: int = AHEAD_MONTHS) -> list[str]:
    """Create the partitions of this month and the next ``ahead_months``; returns the new
    ones. Serialized by a transaction-scoped lock, so racing workers are harmless."""
    if not await is_partitioned(conn, HISTORY_TABLES[0]):
        return []
    await conn.execute(text(f"SELECT pg_advisory_xact_lock({LOCK_ID})"))
    this = month_start(now or datetime.now(UTC))
    created: list[str] = []
    for table in HISTORY_TABLES:
        have = {p.month for p in await partitions(conn, table)}
        for n in range(ahead_months + 1):
            month = add_months(this, n)
            if month not in have:
                for statement in partition_sql(table, month):
                    await conn.execute(text(statement))
                created.append(partition_name(table, month))
    return created


async def detach_before(conn: AsyncConnection, before: date) -> list[str]:
    """Detach every month older than ``before`` from every history table, after recording
    each account's total of the detached entries (``archived_entry_totals``), so that
    ``coinpurse check`` still finds every balance equal to its entries. The detached tables
    stay in the database, plain tables, for ``pg_dump -t`` and ``DROP TABLE``."""
    before = month_start(before)
    if before > month_start(datetime.now(UTC)):
        raise ValueError("only months before the current one can be detached")
    await conn.execute(text(f"SELECT pg_advisory_xact_lock({LOCK_ID})"))
    detached: list[str] = []
    for table in HISTORY_TABLES:
        for p in await partitions(conn, table):
            if p.month >= before:
                continue
            if table == "entries":
                await conn.execute(text(
                    "INSERT INTO archived_entry_totals (partition_name, account_id, total, "
                    "entries, archived_at) SELECT :p, account_id, SUM(amount), COUNT(*), "
                    f"now() FROM {p.name} GROUP BY account_id"), {"p": p.name})
            await conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {p.name}"))
            detached.append(p.name)
    return detached


async def ahead(conn: AsyncConnection) -> int | None:
    """Whole months of partitions left after the current one (None: not partitioned)."""
    if not await is_partitioned(conn, HISTORY_TABLES[0]):
        return None
    this = month_start(datetime.now(UTC))
    counts = []
    for table in HISTORY_TABLES:
        months = {p.month for p in await partitions(conn, table)}
        n = 0
        while add_months(this, n + 1) in months:
            n += 1
        counts.append(n if this in months else -1)
    return min(counts)


async def maintain_loop(db: AsyncEngine, _ledger: object,
                        every_s: float = MAINTAIN_EVERY_S) -> None:
    """Background job of ``coinpurse serve`` and ``coinpurse worker``."""
    if db.dialect.name != "postgresql":
        return
    while True:
        try:
            async with db.begin() as conn:
                created = await ensure(conn)
            if created:
                log.info("created history partitions: %s", ", ".join(created))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("partition maintenance failed; will retry")
        await asyncio.sleep(every_s)
