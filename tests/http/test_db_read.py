"""``Engine.read()``: the hot reads' connection. On PostgreSQL each statement is its own
transaction (no BEGIN and ROLLBACK round trips); on SQLite it is a plain ``connect()``."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from coinpurse.core.db import Engine, create_engine

_XACT_START = text("SELECT xact_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")


async def test_read_connection_has_no_transaction_around_statements(db_url: str) -> None:
    db = create_engine(db_url, pool_size=2)
    assert isinstance(db, Engine)
    try:
        if not db_url.startswith("postgresql"):
            async with db.read() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
            return
        starts = {}
        for name, open_conn in (("connect", db.connect), ("read", db.read)):
            async with open_conn() as conn:
                first = (await conn.execute(_XACT_START)).scalar()
                await asyncio.sleep(0.02)
                second = (await conn.execute(_XACT_START)).scalar()
                starts[name] = (first, second)
        assert starts["connect"][0] == starts["connect"][1]  # one transaction
        assert starts["read"][0] != starts["read"][1]  # a transaction per statement
        # Back in the pool, a connection is a transactional one again.
        async with db.connect() as conn:
            first = (await conn.execute(_XACT_START)).scalar()
            await asyncio.sleep(0.02)
            assert (await conn.execute(_XACT_START)).scalar() == first
    finally:
        await db.dispose()
