"""The memory each pooled SQLite connection may keep (core/db.py)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from coinpurse.core.db import SQLITE_CACHE_KB, create_engine


async def test_sqlite_connections_keep_a_small_page_cache(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'mem.db'}", pool_size=2)
    try:
        async with engine.connect() as conn:  # opened with the short statement cache too
            cache = (await conn.execute(text("PRAGMA cache_size"))).scalar()
            journal = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
        assert cache == -SQLITE_CACHE_KB
        assert journal == "wal"
    finally:
        await engine.dispose()
