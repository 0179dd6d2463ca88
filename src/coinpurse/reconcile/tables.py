"""The seals of the hash chain, reconciliation runs with their discrepancies, and the
per-account marks that make runs incremental."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from coinpurse.core.tables import BigId, UTCDateTime, metadata

# One row per ledger transaction, in the order the sealer met them (the order of their
# transaction.posted events), which never changes. Append-only like the ledger's tables.
# ``hash`` = SHA-256 of the canonical form (reconcile/canonical.py, README "Integrity"),
# which includes ``sequence`` and ``previous_hash``.
ledger_seals = Table(
    "ledger_seals",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("transaction_id", String(36), nullable=False, unique=True),
    Column("entry_count", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("previous_hash", String(64), nullable=False),
    # The transaction.posted event it was sealed from; NULL for the genesis (transactions
    # older than the oldest event kept when sealing began).
    Column("event_id", BigInteger, nullable=True),
    Column("sealed_at", UTCDateTime, nullable=False),
    # The transaction's created_at (NULL if it was missing when sealed): which month of the
    # partitioned history it lives in, so a run knows an archived month's seals.
    Column("created_at", UTCDateTime, nullable=True),
)

reconciliations = Table(
    "reconciliations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),  # ledger, chain, provider
    Column("mode", String(16), nullable=False),  # incremental, full, period
    Column("status", String(16), nullable=False),  # running, passed, failed, error
    Column("trigger", String(160), nullable=False),  # cli, schedule, admin:<id>
    # The day of a scheduled run: unique, so the schedule runs once a day across processes.
    Column("scheduled_for", String(10), nullable=True, unique=True),
    # The kind while running, NULL after: unique, so one run of a kind at a time.
    Column("active_kind", String(16), nullable=True, unique=True),
    Column("provider", String(16), nullable=True),
    Column("scope_json", Text, nullable=False),
    Column("counts_json", Text, nullable=False),
    Column("discrepancy_count", Integer, nullable=False, server_default="0"),
    Column("error", String(1000), nullable=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Index(None, "kind", "status", "id"),
)

reconciliation_discrepancies = Table(
    "reconciliation_discrepancies",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("reconciliations.id"), nullable=False),
    Column("check_name", String(64), nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("expected_json", Text, nullable=True),
    Column("actual_json", Text, nullable=True),
    Column("detail", String(1000), nullable=False),
    Index(None, "run_id", "id"),
)

# What the last clean run saw of each account: an incremental run checks only accounts
# that differ from their mark, and only their entries after ``last_entry_id``.
reconcile_marks = Table(
    "reconcile_marks",
    metadata,
    Column("account_id", BigInteger, primary_key=True, autoincrement=False),
    Column("balance", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("last_entry_id", BigInteger, nullable=False),
    Column("checked_at", UTCDateTime, nullable=False),
)
