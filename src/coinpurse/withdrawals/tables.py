"""Withdrawal requests, each riding on a hold."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    String,
    Table,
    Text,
)

from coinpurse.core.tables import UTCDateTime, metadata

withdrawals = Table(
    "withdrawals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("hold_id", String(36), nullable=False, unique=True),
    Column("destination_json", Text, nullable=False),
    # pending, cancelled, rejected, expired, approved (captured, payout not confirmed), paid
    Column("status", String(16), nullable=False),
    Column("reason", String(500), nullable=True),
    Column("decided_by", String(160), nullable=True),
    Column("transaction_id", String(36), nullable=True),
    Column("payout_provider", String(16), nullable=True),
    Column("payout_reference", String(255), nullable=True),
    Column("payout_error", String(500), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
    Index(None, "user_id", "id"),
    Index(None, "status", "id"),
    Index(None, "user_id", "currency", "created_at"),
)
