"""Adjustments (with four-eyes approval) and reversals."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
)

from coinpurse.core.tables import UTCDateTime, metadata

adjustments = Table(
    "adjustments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("direction", String(8), nullable=False),  # credit, debit
    Column("reason", String(500), nullable=False),
    # pending, applied, rejected, failed
    Column("status", String(16), nullable=False),
    Column("requested_by", String(160), nullable=False),
    Column("decided_by", String(160), nullable=True),
    Column("decision_note", String(500), nullable=True),
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    Index(None, "status", "created_at"),
)

reversals = Table(
    "reversals",
    metadata,
    Column("original_id", String(36), ForeignKey("transactions.id"), primary_key=True),
    Column("reversal_id", String(36), ForeignKey("transactions.id"), nullable=False,
           unique=True),
    Column("reversed_by", String(160), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
