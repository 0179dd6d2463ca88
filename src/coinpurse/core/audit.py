"""The append-only audit log of admin and auth actions: who, what, when, from where.

Nothing updates or deletes its rows; write an entry in the same transaction as the change
it describes (``record``, or ``entry`` as a row the ledger inserts with its batch), so the
log cannot miss a change or show one that did not happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Column, Index, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.core.tables import BigId, UTCDateTime, metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(160), nullable=False),
    Column("actor_role", String(16), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(255), nullable=True),
    Column("details_json", Text, nullable=False),
    Column("ip", String(64), nullable=True),
    Index(None, "actor", "id"),
    Index(None, "action", "id"),
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    actor_role: str | None
    action: str
    target: str | None
    details: dict[str, Any]
    ip: str | None


def entry(*, actor: str, action: str, actor_role: str | None = None, target: str | None = None,
          details: dict[str, Any] | None = None, ip: str | None = None) -> dict[str, Any]:
    """An audit row, to insert in the same commit as the change it describes."""
    return {"at": datetime.now(UTC), "actor": actor, "actor_role": actor_role,
            "action": action, "target": target,
            "details_json": orjson.dumps(details or {}, default=str).decode(), "ip": ip}


async def record(conn: AsyncConnection, *, actor: str, action: str,
                 actor_role: str | None = None, target: str | None = None,
                 details: dict[str, Any] | None = None, ip: str | None = None) -> None:
    await conn.execute(audit_log.insert().values(**entry(
        actor=actor, action=action, actor_role=actor_role, target=target, details=details,
        ip=ip)))


async def page(conn: AsyncConnection, *, actor: str | None, action: str | None,
               before: int | None, limit: int) -> tuple[list[AuditEntry], int | None]:
    """Newest first; the id to continue before, when there is more."""
    stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit + 1)
    if actor:
        stmt = stmt.where(audit_log.c.actor == actor)
    if action:
        stmt = stmt.where(audit_log.c.action == action)
    if before is not None:
        stmt = stmt.where(audit_log.c.id < before)
    rows = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    found = [AuditEntry(r.id, r.at, r.actor, r.actor_role, r.action, r.target,
                        orjson.loads(r.details_json), r.ip) for r in rows[:limit]]
    return found, (found[-1].id if more else None)
