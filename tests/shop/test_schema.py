"""Migration 0112_shop creates exactly the tables declared in coinpurse.shop.tables."""

from __future__ import annotations

from sqlalchemy import create_engine as sync_engine

from coinpurse.core.tables import metadata


def test_migration_matches_the_tables(sqlite_template: object) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = sync_engine(f"sqlite:///{sqlite_template}")
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    mine = ("'products'", "'orders'", "'order_refunds'", "products.", "orders.",
            "order_refunds.", "_products_", "_orders_", "_order_refunds_")
    assert [d for d in diff if any(name in repr(d) for name in mine)] == []
