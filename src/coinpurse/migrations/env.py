"""Alembic environment: run with a connection handed in by ``coinpurse.db.migrate``, or
offline (``coinpurse migrate --sql``) to print the SQL for a database administrator."""

from __future__ import annotations

from alembic import context

from coinpurse.core.tables import metadata

if context.is_offline_mode():
    url = context.config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=metadata, literal_binds=True,
                      render_as_batch=bool(url and url.startswith("sqlite")),
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
else:
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
