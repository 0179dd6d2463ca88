"""The event log (the transactional outbox), the cursors of its internal consumers, and what
reads it: webhook endpoints and deliveries, notifications, e-mails, balance monitors."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from coinpurse.core.tables import BigId, UTCDateTime, metadata

# On PostgreSQL ``id`` is (the writing transaction's id << 24) + its ordinal in that
# transaction (repository.py explains why); on SQLite, with one writer, it is a plain
# autoincrement. Either way ids only grow in the order readers may see them.
events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("data_json", Text, nullable=False),
    Index(None, "created_at"),
)

# How far each internal consumer (webhook fan-out, notifications, ...) has read the log.
event_cursors = Table(
    "event_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("after_id", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Services' webhook endpoints. The signing secret is kept as is (it signs every delivery);
# during a rotation the previous one signs too, until ``previous_secret_expires_at``.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("events_json", Text, nullable=False),  # ["transaction.posted", "topup.*"]
    Column("description", String(255), nullable=False, server_default=""),
    Column("enabled", Boolean, nullable=False, server_default="1"),
    Column("secret", String(128), nullable=False),
    Column("previous_secret", String(128), nullable=True),
    Column("previous_secret_expires_at", UTCDateTime, nullable=True),
    Column("created_by", String(160), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# One row per (endpoint, event), made exactly once by the fan-out consumer. A sender claims
# a due row with a lease (``locked_until``, ``lease_token``); a sender that dies loses its
# lease and another one sends the row again.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("endpoint_id", String(36),
           ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),  # retried until then, then failed
    Column("locked_until", UTCDateTime, nullable=True),
    Column("lease_token", String(36), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    UniqueConstraint("endpoint_id", "event_id"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "endpoint_id", "id"),
)

# Users' notification feed: one per (event, user), made exactly once by its consumer.
notifications = Table(
    "notifications",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("kind", String(64), nullable=False),  # the event type
    Column("title", String(255), nullable=False),
    Column("body", String(1000), nullable=False),
    Column("data_json", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("read_at", UTCDateTime, nullable=True),
    UniqueConstraint("event_id", "user_id"),
    Index(None, "user_id", "id"),
    Index(None, "user_id", "read_at"),
)

# E-mails to send (COINPURSE_SMTP_URL), written with their notification; sent by a job.
email_outbox = Table(
    "email_outbox",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("notification_id", String(36), nullable=False, unique=True),
    Column("to_address", String(254), nullable=False),
    Column("status", String(16), nullable=False),  # pending, sent, failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("lease_token", String(36), nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Index(None, "status", "next_attempt_at"),
)

# Thresholds on balances; checked by the ledger's outbox hook in each batch's commit.
balance_monitors = Table(
    "balance_monitors",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("address", String(255), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("condition", String(8), nullable=False),  # below, above
    Column("amount", BigInteger, nullable=False),
    Column("description", String(255), nullable=False, server_default=""),
    Column("service", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "address", "currency"),
)
