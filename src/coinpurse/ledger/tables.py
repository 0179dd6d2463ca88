"""The ledger's tables. The database guards the invariants it can check cheaply: amounts are
non-zero, holds are non-negative, and an account that may not go negative never does
(``CHECK``), whatever bug sits above it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from coinpurse.core.tables import BigId, UTCDateTime, metadata

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("address", String(255), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("held", BigInteger, nullable=False, server_default="0"),
    Column("overdraft", Boolean, nullable=False, server_default="0"),
    # Incremented by every operation that changes the account (see AccountState.version).
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("address", "currency"),
    CheckConstraint("held >= 0", name="held_not_negative"),
    CheckConstraint("overdraft OR balance >= held", name="no_overdraft"),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("description", String(255), nullable=False),
    Column("reference_id", String(64), nullable=False),
    Column("metadata_json", Text, nullable=False),
    Column("postings_json", Text, nullable=False),
    # Who made it: "service:<name>", "user:<id>" or "admin:<id>". Users never see it.
    Column("initiator", String(160), nullable=False),
    Column("service", String(64), nullable=True),
    Column("internal_notes", Text, nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "reference_id"),
    Index(None, "created_at"),
    Index(None, "service", "created_at"),
)

entries = Table(
    "entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("posting_index", SmallInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("amount <> 0", name="amount_not_zero"),
    Index(None, "account_id", "id"),
    Index(None, "transaction_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(160), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", SmallInteger, nullable=False),
    Column("response_body", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "expires_at"),
)

holds = Table(
    "holds",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("address", String(255), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("destination", String(255), nullable=False),
    # held, captured, voided, expired
    Column("status", String(16), nullable=False),
    Column("service", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("description", String(255), nullable=False),
    Column("reference_id", String(64), nullable=False),
    Column("metadata_json", Text, nullable=False),
    Column("captured_amount", BigInteger, nullable=False, server_default="0"),
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("captured_amount >= 0 AND captured_amount <= amount",
                    name="captured_within_amount"),
    Index(None, "status", "expires_at"),
    Index(None, "address", "currency"),
)

# Per account, the total of the entries of a history month detached for archiving (PostgreSQL;
# coinpurse.partitions, migration 0113): a balance equals these plus its live entries.
archived_entry_totals = Table(
    "archived_entry_totals",
    metadata,
    Column("partition_name", String(63), primary_key=True),
    Column("account_id", BigInteger, primary_key=True),
    Column("total", BigInteger, nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("archived_at", UTCDateTime, nullable=False),
    Index(None, "account_id"),
)
