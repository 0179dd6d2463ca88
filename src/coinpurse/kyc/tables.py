"""KYC profiles (a user's tier) and submissions."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Index,
    SmallInteger,
    String,
    Table,
    Text,
)

from coinpurse.core.tables import UTCDateTime, metadata

kyc_profiles = Table(
    "kyc_profiles",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("tier", SmallInteger, nullable=False, server_default="0"),
    Column("updated_at", UTCDateTime, nullable=False),
)

kyc_submissions = Table(
    "kyc_submissions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("tier", SmallInteger, nullable=False),
    # References to documents kept elsewhere, never the images.
    Column("data_json", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending, approved, rejected
    Column("reason", String(500), nullable=True),
    Column("reviewed_by", String(160), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("reviewed_at", UTCDateTime, nullable=True),
    Index(None, "user_id", "id"),
    Index(None, "status", "id"),
)
