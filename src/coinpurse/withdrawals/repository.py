"""The only SQL on the withdrawals table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.audit import audit_log
from coinpurse.core.clock import utcnow
from coinpurse.core.pages import newest_first
from coinpurse.ledger.service import RowInserts, SqlWrite
from coinpurse.ledger.tables import holds
from coinpurse.withdrawals.model import COUNTED, Withdrawal
from coinpurse.withdrawals.tables import withdrawals

c = withdrawals.c


def _withdrawal(row: Row[Any]) -> Withdrawal:
    return Withdrawal(
        id=row.id, user_id=row.user_id, currency=row.currency, amount=row.amount,
        hold_id=row.hold_id, destination=orjson.loads(row.destination_json),
        status=row.status, reason=row.reason, decided_by=row.decided_by,
        transaction_id=row.transaction_id, payout_provider=row.payout_provider,
        payout_reference=row.payout_reference, payout_error=row.payout_error,
        created_at=row.created_at, updated_at=row.updated_at)


async def get(conn: AsyncConnection, wid: str) -> Withdrawal | None:
    row = (await conn.execute(select(withdrawals).where(c.id == wid))).first()
    return _withdrawal(row) if row is not None else None


def new_row(w: Withdrawal) -> RowInserts:
    """A new withdrawal, inserted in the same commit as the hold it rides on."""
    return (withdrawals, [{
        "id": w.id, "user_id": w.user_id, "currency": w.currency, "amount": w.amount,
        "hold_id": w.hold_id, "destination_json": orjson.dumps(w.destination).decode(),
        "status": w.status, "reason": w.reason, "decided_by": w.decided_by,
        "transaction_id": w.transaction_id, "payout_provider": w.payout_provider,
        "payout_reference": w.payout_reference, "payout_error": w.payout_error,
        "created_at": w.created_at, "updated_at": w.updated_at}])


def audit_row(entry: dict[str, Any]) -> RowInserts:
    """An audit entry (``core.audit.entry``), committed with the decision it records."""
    return (audit_log, [entry])


async def set_if(conn: AsyncConnection, wid: str, when: str, **values: Any) -> bool:
    """Set ``values`` if the withdrawal is still ``when``; whether it was."""
    result = await conn.execute(update(withdrawals).where(c.id == wid, c.status == when)
                                .values(**values, updated_at=utcnow()))
    return bool(result.rowcount)


def change(wid: str, when: str, **values: Any) -> SqlWrite:
    """``set_if`` as a side write of a ledger batch."""

    async def run(conn: AsyncConnection) -> None:
        await set_if(conn, wid, when, **values)

    return run


async def lapsed(conn: AsyncConnection, limit: int) -> list[Withdrawal]:
    """Pending withdrawals whose hold has expired (the hold expiry job released it)."""
    rows = (await conn.execute(
        select(withdrawals).join(holds, holds.c.id == c.hold_id)
        .where(c.status == "pending", holds.c.status == "expired")
        .order_by(c.status, c.id).limit(limit))).all()
    return [_withdrawal(r) for r in rows]


async def used_since(conn: AsyncConnection, user_id: str, currency: str, since: datetime,
                     pending: Sequence[RowInserts]) -> int:
    """What the user's withdrawals since ``since`` count towards a limit, with those this
    batch's earlier jobs are about to insert."""
    used = int((await conn.execute(select(func.coalesce(func.sum(c.amount), 0)).where(
        c.user_id == user_id, c.currency == currency, c.created_at >= since,
        c.status.in_(COUNTED)))).scalar_one())
    for table, rows in pending:
        if table is withdrawals:
            used += sum(int(r["amount"]) for r in rows
                        if r["user_id"] == user_id and r["currency"] == currency)
    return used


async def list_withdrawals(db: AsyncEngine, *, user_id: str | None, status: str | None,
                           before: str | None, limit: int
                           ) -> tuple[list[Withdrawal], str | None]:
    rows, next_id = await newest_first(db, withdrawals,
                                       equal={"user_id": user_id, "status": status},
                                       before=before, limit=limit)
    return [_withdrawal(r) for r in rows], next_id
