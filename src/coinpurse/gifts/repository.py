"""The only SQL on the gifts tables: gift records and the agency each user belongs to."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.db import insert
from coinpurse.core.pages import newest_first
from coinpurse.gifts.tables import gifts, user_agencies
from coinpurse.ledger.service import RowInserts


@dataclass(frozen=True, slots=True)
class Gift:
    """A gift as recorded, beside the ledger transaction that moved it."""

    id: str
    transaction_id: str
    from_user_id: str
    to_user_id: str
    gift_type: str | None
    currency: str
    amount: int
    receiver_amount: int
    agency_id: str | None
    agency_amount: int
    platform_fee: int
    message: str | None
    context_id: str | None
    created_at: datetime


def gift_of(row: Row[Any]) -> Gift:
    return Gift(**row._mapping)


def inserts(found: list[Gift]) -> RowInserts:
    """The rows a ledger batch inserts in the same commit as the gifts' transactions."""
    return (gifts, [dataclasses.asdict(g) for g in found])


async def page(db: AsyncEngine, user_id: str, *, direction: Literal["sent", "received"],
               before: str | None, limit: int) -> tuple[list[Gift], str | None]:
    """A user's gifts, newest first; and the id to continue before (None: the last page)."""
    column = "from_user_id" if direction == "sent" else "to_user_id"
    rows, next_id = await newest_first(db, gifts, equal={column: user_id}, before=before,
                                       limit=limit)
    return [gift_of(r) for r in rows], next_id


async def agency_of(conn: AsyncConnection, user_id: str) -> str | None:
    row = (await conn.execute(
        select(user_agencies.c.agency_id).where(user_agencies.c.user_id == user_id))).first()
    return row.agency_id if row else None


async def set_agency(conn: AsyncConnection, user_id: str, agency_id: str | None,
                     now: datetime) -> None:
    if agency_id is None:
        await conn.execute(user_agencies.delete().where(user_agencies.c.user_id == user_id))
        return
    stmt = insert(conn, user_agencies).values(user_id=user_id, agency_id=agency_id,
                                              updated_at=now)
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={"agency_id": stmt.excluded.agency_id, "updated_at": stmt.excluded.updated_at},
    ))
