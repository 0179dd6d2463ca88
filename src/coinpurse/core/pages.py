"""Keyset pages over a table whose ids sort by time (UUIDv7 text or BIGINT), newest first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

PAGE_MAX = 100  # the largest ``limit`` of any list

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, newest first, and the opaque cursor of the next (None: the last)."""

    items: list[T]
    next_cursor: str | None


async def newest_first(db: AsyncEngine, table: Table, *, equal: dict[str, Any],
                       before: Any, limit: int) -> tuple[list[Row[Any]], Any]:
    """Rows matching every ``column == value`` of ``equal`` (None values are ignored),
    older than ``before``; and the id to continue from, or None on the last page."""
    stmt = select(table).order_by(table.c.id.desc()).limit(limit + 1)
    for column, value in equal.items():
        if value is not None:
            stmt = stmt.where(table.c[column] == value)
    if before is not None:
        stmt = stmt.where(table.c.id < before)
    async with db.connect() as conn:
        rows = list((await conn.execute(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more else None)
