"""The event log (the transactional outbox) and the cursors of its internal consumers."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, Text

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
