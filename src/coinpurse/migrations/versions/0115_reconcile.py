"""reconciliation and tamper evidence

Revision ID: 0115_reconcile
Revises: 0110_events_delivery (after 0113_partitions)
Create Date: 2026-12-01

The hash chain's seals, reconciliation runs and their discrepancies, the marks of
incremental runs; and the ledger made append-only: triggers refuse UPDATE, DELETE and
TRUNCATE of ``transactions``, ``entries`` (postings live in ``transactions.postings_json``)
and ``ledger_seals``, whoever asks, the tables' owner included. On PostgreSQL
``transactions`` and ``entries`` are partitioned by month (0113): the triggers are created
on the partitioned table, which clones the row triggers onto every partition, present and
future; the TRUNCATE (statement) trigger is copied onto each existing partition here, and
onto each new month by the partitions job (``partitions.repository``); a detached month
keeps copies of the row triggers. SQLite gets the same refusals; a later migration that
rebuilds one of these tables on SQLite (``batch_alter_table``) must create its triggers
again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from coinpurse.partitions.repository import statement_triggers_sql

revision = "0115_reconcile"
down_revision = "0110_events_delivery"
branch_labels = None
depends_on = None

APPEND_ONLY = ("transactions", "entries", "ledger_seals")

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION coinpurse_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'coinpurse: % of % refused: the ledger is append-only', TG_OP, TG_TABLE_NAME
        USING HINT = 'correct a transaction with a new one (a reversal), never by an edit';
END
$$
"""


def _create_tables() -> None:
    op.create_table(
        "ledger_seals",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_ledger_seals")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_ledger_seals_transaction_id")),
    )
    op.create_table(
        "reconciliations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=160), nullable=False),
        sa.Column("scheduled_for", sa.String(length=10), nullable=True),
        sa.Column("active_kind", sa.String(length=16), nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=True),
        sa.Column("scope_json", sa.Text(), nullable=False),
        sa.Column("counts_json", sa.Text(), nullable=False),
        sa.Column("discrepancy_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliations")),
        sa.UniqueConstraint("scheduled_for", name=op.f("uq_reconciliations_scheduled_for")),
        sa.UniqueConstraint("active_kind", name=op.f("uq_reconciliations_active_kind")),
    )
    op.create_index(op.f("ix_reconciliations_kind_status_id"), "reconciliations",
                    ["kind", "status", "id"])
    op.create_table(
        "reconciliation_discrepancies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("check_name", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("expected_json", sa.Text(), nullable=True),
        sa.Column("actual_json", sa.Text(), nullable=True),
        sa.Column("detail", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["reconciliations.id"],
                                name=op.f("fk_reconciliation_discrepancies_run_id_reconciliations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_discrepancies")),
    )
    op.create_index(op.f("ix_reconciliation_discrepancies_run_id_id"),
                    "reconciliation_discrepancies", ["run_id", "id"])
    op.create_table(
        "reconcile_marks",
        sa.Column("account_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("last_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_reconcile_marks")),
    )


def upgrade() -> None:
    _create_tables()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION coinpurse_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION coinpurse_append_only()")
            partitioned = op.get_bind().execute(sa.text(
                "SELECT 1 FROM pg_partitioned_table WHERE partrelid = CAST(:t AS regclass)"),
                {"t": table}).first()
            if partitioned:  # statement triggers are not cloned: one copy per month
                op.execute(statement_triggers_sql(table))
        return
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, 'coinpurse: {action} of {table} refused: "
                       "the ledger is append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            months = op.get_bind().execute(sa.text(
                "SELECT inhrelid::regclass::text FROM pg_inherits "
                "WHERE inhparent = CAST(:t AS regclass)"), {"t": table}).scalars().all()
            for month in months:  # the copies of the TRUNCATE trigger
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {month}")
        op.execute("DROP FUNCTION IF EXISTS coinpurse_append_only()")
    else:
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    op.drop_table("reconcile_marks")
    op.drop_index(op.f("ix_reconciliation_discrepancies_run_id_id"),
                  table_name="reconciliation_discrepancies")
    op.drop_table("reconciliation_discrepancies")
    op.drop_index(op.f("ix_reconciliations_kind_status_id"), table_name="reconciliations")
    op.drop_table("reconciliations")
    op.drop_table("ledger_seals")
