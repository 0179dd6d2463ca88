"""KYC: users submit what a tier requires (references to documents kept elsewhere, never
the images); operators approve or reject. A user's tier sets their limits (``tiers.py``);
top-ups and withdrawals ask here for the tier and for the refusal a limit gives."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.auth.tokens import Principal
from coinpurse.core import audit
from coinpurse.core.clock import iso, utcnow
from coinpurse.core.errors import NotFound, ValidationFailed
from coinpurse.core.ids import new_id
from coinpurse.events.service import emit
from coinpurse.kyc import repository as repo
from coinpurse.kyc.errors import (
    KycRequired,
    KycSubmissionNotPending,
    KycSubmissionPending,
    LimitExceeded,
)
from coinpurse.kyc.model import KycStatus, KycSubmission
from coinpurse.kyc.settings import KycSettings


async def lock_tier(conn: AsyncConnection, user_id: str) -> int:
    """The user's tier level, with their profile locked until ``conn`` commits: the
    checks that depend on it (one user's top-up limits) run one at a time."""
    return await repo.lock_profile(conn, user_id)


async def tier_level(conn: AsyncConnection, user_id: str) -> int:
    return await repo.tier_of(conn, user_id)


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


def withdrawal_tier(settings: KycSettings) -> int | None:
    """The lowest tier that may withdraw (None: none may)."""
    return next((lvl for lvl, t in sorted(settings.tiers.items()) if t.withdrawals), None)


def withdrawal_refusal(settings: KycSettings, level: int) -> KycRequired | None:
    """Why a user at ``level`` may not withdraw at all, naming the tier that may; None if
    their tier allows withdrawals."""
    if settings.tier_for(level).withdrawals:
        return None
    needed = withdrawal_tier(settings)
    return KycRequired(
        f"withdrawals need verification to tier {needed}" if needed is not None
        else "withdrawals are not allowed at any tier", tier=level, required_tier=needed,
        limit="withdrawals")


async def status(db: AsyncEngine, settings: KycSettings, user_id: str) -> KycStatus:
    async with db.connect() as conn:
        level = await repo.tier_of(conn, user_id)
        latest = await repo.latest_submission(conn, user_id)
    return KycStatus(user_id=user_id, tier=settings.tier_for(level),
                     next_tier=settings.tiers.get(level + 1), submission=latest,
                     currencies=tuple(settings.currencies))


def _check_submission(settings: KycSettings, tier: int, data: dict[str, Any]) -> None:
    all_tiers = settings.tiers
    if tier not in all_tiers or tier == 0:
        raise ValidationFailed(f"tier must be one of {', '.join(map(str, all_tiers))[3:]}", [
            {"loc": ["body", "tier"], "msg": "unknown tier", "type": "unknown_tier"}])
    missing = [f for f in all_tiers[tier].requires if not data.get(f)]
    if missing:
        raise ValidationFailed(f"tier {tier} needs: {', '.join(missing)}", [
            {"loc": ["body", f], "msg": "Field required", "type": "missing"} for f in missing])


async def submit(db: AsyncEngine, settings: KycSettings, user_id: str, tier: int,
                 data: dict[str, Any]) -> KycSubmission:
    _check_submission(settings, tier, data)
    async with db.begin() as conn:
        current = await repo.lock_profile(conn, user_id)  # one submission at a time per user
        if tier <= current:
            raise ValidationFailed(f"you are already at tier {current}", [
                {"loc": ["body", "tier"], "msg": "already reached", "type": "tier_reached"}])
        waiting = await repo.pending_submission_id(conn, user_id)
        if waiting is not None:
            raise KycSubmissionPending("a submission is already waiting for review",
                                       submission_id=waiting)
        return await repo.insert_submission(
            conn, sid=new_id(), user_id=user_id, tier=tier,
            data={k: v for k, v in data.items() if v is not None}, now=utcnow())


async def decide(db: AsyncEngine, admin: Principal, sid: str, *, approve: bool,
                 reason: str | None, ip: str | None) -> KycSubmission:
    """Approve (the user's tier becomes the submission's) or reject, with an audit entry in
    the same transaction."""
    now = utcnow()
    async with db.begin() as conn:
        found = await repo.get_submission(conn, sid)
        if found is None:
            raise NotFound(f"no KYC submission {sid!r}")
        current = await repo.lock_profile(conn, found.user_id)
        if not await repo.decide_submission(
                conn, sid, status="approved" if approve else "rejected", reason=reason,
                reviewed_by=admin.user_id, now=now):
            raise KycSubmissionNotPending(f"the submission is already {found.status}",
                                          submission_status=found.status)
        if approve:
            await repo.set_tier(conn, found.user_id, max(current, found.tier), now)
        await emit(conn, "kyc.approved" if approve else "kyc.rejected", {
            "submission_id": sid, "user_id": found.user_id, "tier": found.tier,
            "reason": reason, "decided_at": iso(now)}, now)
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="kyc.approve" if approve else "kyc.reject",
                           target=f"user:{found.user_id}",
                           details={"submission_id": sid, "tier": found.tier,
                                    "reason": reason}, ip=ip)
        decided = await repo.get_submission(conn, sid)
    assert decided is not None
    return decided


async def list_submissions(db: AsyncEngine, *, status: str | None, user_id: str | None,
                           before: str | None, limit: int
                           ) -> tuple[list[KycSubmission], str | None]:
    return await repo.list_submissions(db, status=status, user_id=user_id, before=before,
                                       limit=limit)
