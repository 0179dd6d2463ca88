"""history partitions

Revision ID: 0100_history_partitions
Revises: 0004
Create Date: 2026-12-01

PostgreSQL: ``transactions`` and ``entries`` become partitioned by month of ``created_at``
(coinpurse.partitions). PostgreSQL requires the partition key in every unique constraint,
so their primary keys become ``(id, created_at)``, and a unique ``transactions.id`` can no
longer be referenced: the foreign keys to ``transactions(id)`` (from entries, holds, gifts,
adjustments, reversals) are dropped there. The ledger writes a transaction and its
references in one database transaction, and ``coinpurse check`` verifies that every
entry's transaction exists. ``entries.account_id`` keeps its foreign key to ``accounts``.

The existing rows are copied into the new tables: on a large ledger, run this in a
maintenance window. Both databases get ``archived_entry_totals`` (per account, the total of
the entries of a detached month). SQLite's history tables are unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from coinpurse.partitions import AHEAD_MONTHS, add_months, month_start, partition_sql

revision = "0100_history_partitions"
down_revision = "0004"
branch_labels = None
depends_on = None

_INDEXES = {
    "transactions": [("ix_transactions_created_at", "created_at"),
                     ("ix_transactions_reference_id", "reference_id"),
                     ("ix_transactions_service_created_at", "service, created_at")],
    "entries": [("ix_entries_account_id_id", "account_id, id"),
                ("ix_entries_transaction_id", "transaction_id")],
}


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
        sa.Index("ix_archived_entry_totals_account_id", "account_id"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    bind = op.get_bind()
    for name, table in bind.execute(sa.text(
            "SELECT conname, conrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND confrelid = 'transactions'::regclass")).all():
        op.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    oldest = bind.execute(sa.text("SELECT min(created_at) FROM transactions")).scalar()
    now = datetime.now(UTC)
    first = month_start(min(oldest, now) if oldest else now)
    last = add_months(month_start(now), AHEAD_MONTHS)
    op.execute("ALTER SEQUENCE entries_id_seq OWNED BY NONE")
    for table in ("transactions", "entries"):
        new = f"{table}_partitioned"
        op.execute(f"CREATE TABLE {new} (LIKE {table} INCLUDING DEFAULTS INCLUDING "
                   "CONSTRAINTS) PARTITION BY RANGE (created_at)")
        op.execute(f"ALTER TABLE {new} ADD CONSTRAINT pk_{new} PRIMARY KEY (id, created_at)")
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_unpartitioned")
        op.execute(f"ALTER TABLE {new} RENAME TO {table}")
        op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT pk_{new} TO pk_{table}_p")
        month = first
        while month <= last:
            for statement in partition_sql(table, month):
                op.execute(statement)
            month = add_months(month, 1)
        op.execute(f"INSERT INTO {table} SELECT * FROM {table}_unpartitioned")
        op.execute(f"DROP TABLE {table}_unpartitioned")
        op.execute(f"ALTER TABLE {table} RENAME CONSTRAINT pk_{table}_p TO pk_{table}")
        for index, columns in _INDEXES[table]:
            op.execute(f"CREATE INDEX {index} ON {table} ({columns})")
    op.execute("ALTER SEQUENCE entries_id_seq OWNED BY entries.id")
    op.execute("ALTER TABLE entries ADD CONSTRAINT fk_entries_account_id_accounts "
               "FOREIGN KEY (account_id) REFERENCES accounts (id)")
    op.execute("ANALYZE transactions")
    op.execute("ANALYZE entries")


def downgrade() -> None:  # pragma: no cover - forward only, like the other migrations
    raise NotImplementedError("history partitions are not undone")
