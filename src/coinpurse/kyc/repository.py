"""The only SQL on the KYC tables."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.core.db import insert
from coinpurse.kyc.tables import kyc_profiles


async def lock_profile(conn: AsyncConnection, user_id: str) -> int:
    """The user's tier, with their profile row locked: order creations of one user (and
    tier changes) are serialised, so two concurrent orders cannot both pass a daily limit."""
    await conn.execute(insert(conn, kyc_profiles).values(
        user_id=user_id, tier=0, updated_at=datetime.now(UTC)).on_conflict_do_nothing(
        index_elements=["user_id"]))
    tier: int = (await conn.execute(
        select(kyc_profiles.c.tier).where(kyc_profiles.c.user_id == user_id)
        .with_for_update())).scalar_one()
    return tier


async def tier_of(conn: AsyncConnection, user_id: str) -> int:
    tier = (await conn.execute(select(kyc_profiles.c.tier)
                               .where(kyc_profiles.c.user_id == user_id))).scalar()
    return int(tier or 0)
