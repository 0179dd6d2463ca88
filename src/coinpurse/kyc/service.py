"""KYC: users submit what a tier requires (references to documents kept elsewhere, never
the images); operators approve or reject. A user's tier sets their limits (``tiers.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.auth.tokens import Principal
from coinpurse.core import audit
from coinpurse.core.clock import iso
from coinpurse.core.errors import NotFound, ValidationFailed
from coinpurse.core.ids import new_id
from coinpurse.core.pages import newest_first
from coinpurse.kyc.errors import (
    KycRequired,
    KycSubmissionNotPending,
    KycSubmissionPending,
    LimitExceeded,
)
from coinpurse.kyc.repository import lock_profile, tier_of
from coinpurse.kyc.settings import KycSettings
from coinpurse.kyc.tables import kyc_profiles, kyc_submissions
from coinpurse.kyc.tiers import LIMIT_NAMES, Tier


def limit_refusal(settings: KycSettings, tier: int, currency: str, name: str, *,
                  limit: int, used: int, requested: int) -> KycRequired | LimitExceeded:
    """``kyc_required`` when the tier allows nothing and a higher one would; else
    ``limit_exceeded`` naming the limit."""
    extra = {"limit": name, "tier": tier, "currency": currency, "limit_value": limit,
             "used": used, "requested": requested}
    if limit == 0:
        for level, t in sorted(settings.tiers.items()):
            higher = t.limits_for(currency).get(name)
            if level > tier and (higher is None or higher > 0):
                return KycRequired(f"{name} is 0 at tier {tier}; verify to tier {level}",
                                   required_tier=level, **extra)
    left = max(limit - used, 0)
    return LimitExceeded(f"{name} of tier {tier} is {limit} {currency}: {left} left, "
                         f"{requested} asked", **extra)


def tier_view(settings: KycSettings, tier: Tier) -> dict[str, Any]:
    return {
        "tier": tier.level, "requires": list(tier.requires), "withdrawals": tier.withdrawals,
        "limits": {c: {n: tier.limits_for(c).get(n) for n in LIMIT_NAMES}
                   for c in settings.currencies},
    }


def submission_view(r: Row[Any], *, admin: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id, "tier": r.tier, "status": r.status, "reason": r.reason,
        "created_at": iso(r.created_at), "reviewed_at": iso(r.reviewed_at),
    }
    if admin:
        out.update(user_id=r.user_id, data=orjson.loads(r.data_json),
                   reviewed_by=r.reviewed_by)
    return out


async def status(db: AsyncEngine, settings: KycSettings, user_id: str) -> dict[str, Any]:
    async with db.connect() as conn:
        level = await tier_of(conn, user_id)
        latest = (await conn.execute(
            select(kyc_submissions).where(kyc_submissions.c.user_id == user_id)
            .order_by(kyc_submissions.c.id.desc()).limit(1))).first()
    all_tiers = settings.tiers
    return {
        "user_id": user_id, **tier_view(settings, settings.tier_for(level)),
        "next_tier": tier_view(settings, all_tiers[level + 1]) if level + 1 in all_tiers
        else None,
        "submission": submission_view(latest) if latest else None,
    }


async def submit(db: AsyncEngine, settings: KycSettings, user_id: str, tier: int,
                 data: dict[str, Any]) -> Row[Any]:
    all_tiers = settings.tiers
    if tier not in all_tiers or tier == 0:
        raise ValidationFailed(f"tier must be one of {', '.join(map(str, all_tiers))[3:]}", [
            {"loc": ["body", "tier"], "msg": "unknown tier", "type": "unknown_tier"}])
    missing = [f for f in all_tiers[tier].requires if not data.get(f)]
    if missing:
        raise ValidationFailed(f"tier {tier} needs: {', '.join(missing)}", [
            {"loc": ["body", f], "msg": "Field required", "type": "missing"} for f in missing])
    sid = new_id()
    now = datetime.now(UTC)
    async with db.begin() as conn:
        current = await lock_profile(conn, user_id)  # one submission at a time per user
        if tier <= current:
            raise ValidationFailed(f"you are already at tier {current}", [
                {"loc": ["body", "tier"], "msg": "already reached", "type": "tier_reached"}])
        waiting = (await conn.execute(select(kyc_submissions.c.id).where(
            kyc_submissions.c.user_id == user_id,
            kyc_submissions.c.status == "pending"))).first()
        if waiting is not None:
            raise KycSubmissionPending("a submission is already waiting for review",
                                       submission_id=waiting.id)
        await conn.execute(kyc_submissions.insert().values(
            id=sid, user_id=user_id, tier=tier,
            data_json=orjson.dumps({k: v for k, v in data.items() if v is not None}).decode(),
            status="pending", created_at=now))
        row = (await conn.execute(select(kyc_submissions).where(
            kyc_submissions.c.id == sid))).one()
    return row


async def decide(db: AsyncEngine, admin: Principal, sid: str, *, approve: bool,
                 reason: str | None, ip: str | None) -> Row[Any]:
    """Approve (the user's tier becomes the submission's) or reject, with an audit entry in
    the same transaction."""
    now = datetime.now(UTC)
    async with db.begin() as conn:
        row = (await conn.execute(select(kyc_submissions).where(
            kyc_submissions.c.id == sid))).first()
        if row is None:
            raise NotFound(f"no KYC submission {sid!r}")
        current = await lock_profile(conn, row.user_id)
        done = await conn.execute(update(kyc_submissions).where(
            kyc_submissions.c.id == sid, kyc_submissions.c.status == "pending").values(
            status="approved" if approve else "rejected", reason=reason,
            reviewed_by=admin.user_id, reviewed_at=now))
        if not done.rowcount:
            raise KycSubmissionNotPending(f"the submission is already {row.status}",
                                          submission_status=row.status)
        if approve:
            await conn.execute(update(kyc_profiles).where(
                kyc_profiles.c.user_id == row.user_id).values(
                tier=max(current, row.tier), updated_at=now))
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="kyc.approve" if approve else "kyc.reject",
                           target=f"user:{row.user_id}",
                           details={"submission_id": sid, "tier": row.tier,
                                    "reason": reason}, ip=ip)
        fresh = (await conn.execute(select(kyc_submissions).where(
            kyc_submissions.c.id == sid))).one()
    return fresh


async def list_submissions(db: AsyncEngine, *, status: str | None, user_id: str | None,
                           before: str | None, limit: int) -> tuple[list[Row[Any]],
                                                                   str | None]:
    rows, next_id = await newest_first(db, kyc_submissions,
                                       equal={"status": status, "user_id": user_id},
                                       before=before, limit=limit)
    return rows, next_id
