"""history partitions

Revision ID: 0113_partitions
Revises: 0112_shop
Create Date: 2026-12-01

PostgreSQL: ``transactions``, ``entries`` and ``events`` become partitioned by month of
``created_at`` (coinpurse.partitions). PostgreSQL requires the partition key in every
unique constraint, so their primary keys become ``(id, created_at)``, and a unique
``transactions.id`` can no longer be referenced: every foreign key to these tables is
dropped there (to ``transactions(id)``: from entries, holds, gifts, admin_adjustments,
admin_reversals (both columns), orders and order_refunds). The ledger writes a transaction
and whatever refers to it in one database transaction, and ``coinpurse check`` verifies
that every reference finds its transaction. ``entries.account_id`` keeps its foreign key
to ``accounts``.

Each table keeps its indexes and its triggers (copied from the table it replaces, so the
append-only triggers of the integrity work survive whichever migration runs first; row
triggers reach each partition, statement triggers are copied to each; see
partitions/repository.py). The existing rows are copied into the new tables: on a large
ledger, run this in a maintenance window. Both databases get ``archived_entry_totals``
(per account, the total of the entries of a detached month). SQLite's history tables are
unchanged.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

from coinpurse.partitions.repository import add_months, copy_triggers_sql, partition_sql

revision = "0113_partitions"
down_revision = "0112_shop"
branch_labels = None
depends_on = None

TABLES = ("transactions", "entries", "events")
AHEAD_MONTHS = 1  # as coinpurse.partitions.service at the time of writing


def upgrade() -> None:
    op.create_table(
        "archived_entry_totals",
        sa.Column("partition_name", sa.String(length=63), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partition_name", "account_id",
                                name=op.f("pk_archived_entry_totals")),
    )
    op.create_index(op.f("ix_archived_entry_totals_account_id"), "archived_entry_totals",
                    ["account_id"])
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name, table in bind.execute(sa.text(
            "SELECT conname, conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
            "AND confrelid IN ('transactions'::regclass, 'entries'::regclass, "
            "'events'::regclass)")).all():
        op.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    oldest = [bind.execute(sa.text(f"SELECT min(created_at) FROM {t}")).scalar()
              for t in TABLES]
    now = datetime.now(UTC)
    first_day = min([o for o in oldest if o is not None] + [now])
    first = first_day.astimezone(UTC).date().replace(day=1)
    last = add_months(now.date().replace(day=1), AHEAD_MONTHS)
    op.execute("ALTER SEQUENCE entries_id_seq OWNED BY NONE")
    for table in TABLES:
        _partition(table, first, last)
    op.execute("ALTER SEQUENCE entries_id_seq OWNED BY entries.id")
    op.execute("ALTER TABLE entries ADD CONSTRAINT fk_entries_account_id_accounts "
               "FOREIGN KEY (account_id) REFERENCES accounts (id)")
    for table in TABLES:
        op.execute(f"ANALYZE {table}")


def _partition(table: str, first: date, last: date) -> None:
    """Replace ``table`` by a table partitioned by month, with the same columns, checks,
    defaults, indexes, triggers and rows."""
    bind = op.get_bind()
    old, new = f"{table}_unpartitioned", f"{table}_partitioned"
    indexes = bind.execute(sa.text(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = CAST(:t AS regclass) AND NOT i.indisprimary ORDER BY 1"),
        {"t": table}).scalars().all()
    op.execute(f"CREATE TABLE {new} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
               "PARTITION BY RANGE (created_at)")
    op.execute(f"ALTER TABLE {new} ADD CONSTRAINT pk_{new} PRIMARY KEY (id, created_at)")
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(f"ALTER TABLE {new} RENAME TO {table}")
    op.execute(copy_triggers_sql(old, table, "all"))
    month = first
    while month <= last:
        for statement in partition_sql(table, month):
            op.execute(statement)
        month = add_months(month, 1)
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old}")
    op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT pk_{new} TO pk_{table}")
    for definition in indexes:  # the same names, now free, on the new table
        op.execute(re.sub(r" ON \S+ USING ", f" ON {table} USING ", definition, count=1))


def downgrade() -> None:  # pragma: no cover - forward only, like the other migrations
    raise NotImplementedError("history partitions are not undone")
