"""The only SQL of partition management: PostgreSQL's catalog, and the DDL that adds,
attaches and detaches monthly partitions.

The statements are plain strings, so the migration that partitions the tables (0113) makes
its months exactly as the job does later.

Triggers on a partitioned parent (the append-only triggers of the integrity work, say):
PostgreSQL clones the parent's row triggers onto a partition when it is attached and drops
the clones when it is detached, and never clones statement triggers (TRUNCATE). So a new
partition gets copies of the parent's statement triggers (a TRUNCATE of one month is
refused like a TRUNCATE of the parent), and a detached month gets copies of the parent's
row triggers (it stays append-only until it is archived and dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

LOCK_ID = 7_262_311_905  # one partition manager at a time (transaction-scoped)
TriggerLevel = Literal["row", "statement", "all"]


@dataclass(frozen=True, slots=True)
class Partition:
    table: str
    name: str
    month: date
    rows: int | None = None  # the planner's estimate


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_y{month.year:04d}m{month.month:02d}"


def copy_triggers_sql(source: str, target: str, level: TriggerLevel) -> str:
    """A statement that gives ``target`` a copy of each trigger of ``source`` it lacks (by
    name): the triggers declared on ``source`` itself, not clones of a parent's."""
    only = {"row": "AND (tg.tgtype & 1) = 1", "statement": "AND (tg.tgtype & 1) = 0",
            "all": ""}[level]
    return f"""DO $copy$
DECLARE t record;
BEGIN
  FOR t IN SELECT pg_get_triggerdef(tg.oid) AS def FROM pg_trigger tg
      WHERE tg.tgrelid = '{source}'::regclass AND NOT tg.tgisinternal
        AND tg.tgparentid = 0 {only}
        AND NOT EXISTS (SELECT 1 FROM pg_trigger x
                        WHERE x.tgrelid = '{target}'::regclass AND x.tgname = tg.tgname)
      ORDER BY tg.tgname
  LOOP
    EXECUTE regexp_replace(t.def, ' ON \\S+ ', ' ON {target} ');
  END LOOP;
END
$copy$"""


def statement_triggers_sql(table: str) -> str:
    """A statement that gives every partition of ``table`` a copy of each statement trigger
    of ``table`` it lacks: for triggers added to the parent after its months were made."""
    return f"""DO $copy$
DECLARE t record;
BEGIN
  FOR t IN SELECT c.relname AS part, pg_get_triggerdef(tg.oid) AS def FROM pg_trigger tg
      JOIN pg_inherits i ON i.inhparent = tg.tgrelid JOIN pg_class c ON c.oid = i.inhrelid
      WHERE tg.tgrelid = '{table}'::regclass AND NOT tg.tgisinternal
        AND tg.tgparentid = 0 AND (tg.tgtype & 1) = 0
        AND NOT EXISTS (SELECT 1 FROM pg_trigger x
                        WHERE x.tgrelid = c.oid AND x.tgname = tg.tgname)
      ORDER BY c.relname, tg.tgname
  LOOP
    EXECUTE regexp_replace(t.def, ' ON \\S+ ', ' ON ' || quote_ident(t.part) || ' ');
  END LOOP;
END
$copy$"""


def partition_sql(table: str, month: date) -> list[str]:
    """Statements that add ``month``'s partition to ``table`` without blocking writers: a
    plain table with the partition's CHECK, then ATTACH (a SHARE UPDATE EXCLUSIVE lock on
    the parent, which inserts do not conflict with; the CHECK spares the scan). The parent's
    row triggers are cloned by ATTACH; its statement triggers are copied."""
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
        copy_triggers_sql(table, name, "statement"),
    ]


async def is_partitioned(conn: AsyncConnection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    found = (await conn.execute(text(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = :t AND pg_table_is_visible(c.oid)"), {"t": table})).first()
    return found is not None


async def attached(conn: AsyncConnection, table: str) -> list[Partition]:
    """The monthly partitions attached to ``table``, oldest first."""
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


async def lock(conn: AsyncConnection) -> None:
    """Serialize partition managers (several workers); released at the transaction's end."""
    await conn.execute(text(f"SELECT pg_advisory_xact_lock({LOCK_ID})"))


async def create(conn: AsyncConnection, table: str, month: date) -> None:
    for statement in partition_sql(table, month):
        await conn.exec_driver_sql(statement)


async def copy_statement_triggers(conn: AsyncConnection, table: str) -> None:
    await conn.exec_driver_sql(statement_triggers_sql(table))


async def archive_entry_totals(conn: AsyncConnection, partition: str) -> None:
    """Per account, the total of the entries of ``partition`` (a month of ``entries``
    about to be detached): a balance stays equal to its live entries plus these."""
    await conn.execute(text(
        "INSERT INTO archived_entry_totals (partition_name, account_id, total, entries, "
        f"archived_at) SELECT :p, account_id, SUM(amount), COUNT(*), now() FROM {partition} "
        "GROUP BY account_id"), {"p": partition})


async def detach(conn: AsyncConnection, table: str, partition: str) -> None:
    """Detach ``partition``; it keeps the parent's row triggers (append-only) as copies."""
    await conn.exec_driver_sql(f"ALTER TABLE {table} DETACH PARTITION {partition}")
    await conn.exec_driver_sql(copy_triggers_sql(table, partition, "row"))
