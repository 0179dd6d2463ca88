"""The append-only audit log of admin and auth actions: who, what, when, from where.

Nothing updates or deletes its rows; write an entry in the same transaction as the change
it describes, so the log cannot miss a change or show one that did not happen.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.tables import audit_log


async def record(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    actor_role: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    await conn.execute(audit_log.insert().values(
        at=datetime.now(UTC), actor=actor, actor_role=actor_role, action=action,
        target=target, details_json=orjson.dumps(details or {}, default=str).decode(), ip=ip,
    ))
