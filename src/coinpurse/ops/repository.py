"""The one query of its own: the migration the database is at."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def current_revision(db: AsyncEngine) -> str | None:
    async with db.connect() as conn:
        return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
