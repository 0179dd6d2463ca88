"""Gifts and the agency each receiving user belongs to."""

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

user_agencies = Table(
    "user_agencies",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("agency_id", String(128), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "agency_id"),
)

gifts = Table(
    "gifts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=False),
    Column("from_user_id", String(128), nullable=False),
    Column("to_user_id", String(128), nullable=False),
    Column("gift_type", String(32), nullable=True),
    Column("currency", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("receiver_amount", BigInteger, nullable=False),
    Column("agency_id", String(128), nullable=True),
    Column("agency_amount", BigInteger, nullable=False),
    Column("platform_fee", BigInteger, nullable=False),
    Column("message", String(500), nullable=True),
    Column("context_id", String(128), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("receiver_amount + agency_amount + platform_fee = amount",
                    name="split_is_whole"),
    Index(None, "from_user_id", "id"),
    Index(None, "to_user_id", "id"),
    Index(None, "agency_id", "created_at"),
)
