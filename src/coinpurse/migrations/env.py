"""Alembic environment: run with a connection handed in by ``coinpurse.db.migrate``."""

from __future__ import annotations

from alembic import context

from coinpurse.core.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through coinpurse.db.migrate
    raise RuntimeError("run migrations with `coinpurse migrate`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
