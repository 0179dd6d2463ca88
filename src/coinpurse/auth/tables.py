"""Service API keys, built-in user accounts and their refresh tokens."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
)

from coinpurse.core.tables import UTCDateTime, metadata

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("service", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    # Set when the key is rotated: it keeps working until then (the grace period).
    Column("expires_at", UTCDateTime, nullable=True),
    Column("created_by", String(160), nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    # user, merchant, admin, auditor
    Column("role", String(16), nullable=False, server_default="user"),
    Column("totp_secret", String(64), nullable=True),
    Column("totp_enabled", Boolean, nullable=False, server_default="0"),
    Column("recovery_codes_json", Text, nullable=True),  # SHA-256 hashes of unused codes
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("family_id", String(36), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("mfa", Boolean, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index(None, "family_id"),
    Index(None, "user_id"),
)
