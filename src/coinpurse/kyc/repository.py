"""The only SQL on the KYC tables: profiles (a user's tier) and submissions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.clock import utcnow
from coinpurse.core.db import insert
from coinpurse.core.pages import newest_first
from coinpurse.kyc.model import KycSubmission
from coinpurse.kyc.tables import kyc_profiles, kyc_submissions


async def lock_profile(conn: AsyncConnection, user_id: str) -> int:
    """The user's tier, with their profile row locked: order creations of one user (and
    tier changes) are serialised, so two concurrent orders cannot both pass a daily limit."""
    await conn.execute(insert(conn, kyc_profiles).values(
        user_id=user_id, tier=0, updated_at=utcnow()).on_conflict_do_nothing(
        index_elements=["user_id"]))
    tier: int = (await conn.execute(
        select(kyc_profiles.c.tier).where(kyc_profiles.c.user_id == user_id)
        .with_for_update())).scalar_one()
    return tier


async def tier_of(conn: AsyncConnection, user_id: str) -> int:
    tier = (await conn.execute(select(kyc_profiles.c.tier)
                               .where(kyc_profiles.c.user_id == user_id))).scalar()
    return int(tier or 0)


async def set_tier(conn: AsyncConnection, user_id: str, tier: int, now: datetime) -> None:
    """Under the profile lock (``lock_profile``)."""
    await conn.execute(update(kyc_profiles).where(kyc_profiles.c.user_id == user_id)
                       .values(tier=tier, updated_at=now))


def _submission(row: Row[Any]) -> KycSubmission:
    return KycSubmission(
        id=row.id, user_id=row.user_id, tier=row.tier, data=orjson.loads(row.data_json),
        status=row.status, reason=row.reason, reviewed_by=row.reviewed_by,
        created_at=row.created_at, reviewed_at=row.reviewed_at)


async def get_submission(conn: AsyncConnection, sid: str) -> KycSubmission | None:
    row = (await conn.execute(select(kyc_submissions).where(
        kyc_submissions.c.id == sid))).first()
    return _submission(row) if row is not None else None


async def latest_submission(conn: AsyncConnection, user_id: str) -> KycSubmission | None:
    row = (await conn.execute(
        select(kyc_submissions).where(kyc_submissions.c.user_id == user_id)
        .order_by(kyc_submissions.c.id.desc()).limit(1))).first()
    return _submission(row) if row is not None else None


async def pending_submission_id(conn: AsyncConnection, user_id: str) -> str | None:
    sid: str | None = (await conn.execute(select(kyc_submissions.c.id).where(
        kyc_submissions.c.user_id == user_id,
        kyc_submissions.c.status == "pending"))).scalar()
    return sid


async def insert_submission(conn: AsyncConnection, *, sid: str, user_id: str, tier: int,
                            data: dict[str, Any], now: datetime) -> KycSubmission:
    await conn.execute(kyc_submissions.insert().values(
        id=sid, user_id=user_id, tier=tier, data_json=orjson.dumps(data).decode(),
        status="pending", created_at=now))
    found = await get_submission(conn, sid)
    assert found is not None
    return found


async def decide_submission(conn: AsyncConnection, sid: str, *, status: str,
                            reason: str | None, reviewed_by: str, now: datetime) -> bool:
    """Decide a pending submission; False if it was already decided."""
    done = await conn.execute(update(kyc_submissions).where(
        kyc_submissions.c.id == sid, kyc_submissions.c.status == "pending").values(
        status=status, reason=reason, reviewed_by=reviewed_by, reviewed_at=now))
    return bool(done.rowcount)


async def list_submissions(db: AsyncEngine, *, status: str | None, user_id: str | None,
                           before: str | None, limit: int
                           ) -> tuple[list[KycSubmission], str | None]:
    rows, next_id = await newest_first(db, kyc_submissions,
                                       equal={"status": status, "user_id": user_id},
                                       before=before, limit=limit)
    return [_submission(r) for r in rows], next_id
