"""The only SQL on the bonuses' tables.

Inside a ledger job, bonuses are read under the user's bonus wallet lock together with what
the batch's earlier jobs are about to write (``pending``: their bonus rows and change rows),
so two jobs of one batch see each other's changes. Changes are returned as side writes:
rows to insert, and guarded updates that raise ``StaleWrite`` when the row is not as the
job saw it (the batch then fails and the ledger re-runs its jobs one by one), so money can
never commit with a bonus row that says something else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.bonuses.model import (
    Bonus,
    BonusFilter,
    Promotion,
    PromotionFilter,
    Referral,
    Terms,
)
from coinpurse.bonuses.tables import (
    bonus_changes,
    bonus_signups,
    bonuses,
    promotion_orders,
    promotions,
    referral_rewards,
    referrals,
)
from coinpurse.core.audit import audit_log
from coinpurse.core.db import insert as upsert
from coinpurse.ledger.service import RowInserts, SqlWrite

p = promotions.c
b = bonuses.c
ch = bonus_changes.c


class StaleWrite(RuntimeError):
    """A side write found its row not as its job decided: the batch must not commit."""


def _terms(contributions_json: str, default_bp: int, max_conversion: int | None) -> Terms:
    return Terms(orjson.loads(contributions_json), default_bp, max_conversion)


def _pending_rows(pending: Sequence[RowInserts], table: Any) -> Iterable[dict[str, Any]]:
    for t, rows in pending:
        if t is table:
            yield from rows


# ---------------------------------------------------------------- promotions


def _promotion(row: Row[Any]) -> Promotion:
    return Promotion(
        id=row.id, code=row.code, kind=row.kind, currency=row.currency,
        description=row.description, percent_bp=row.percent_bp, max_bonus=row.max_bonus,
        amount=row.amount, min_deposit=row.min_deposit,
        wagering_multiplier=row.wagering_multiplier,
        terms=_terms(row.contributions_json, row.default_contribution_bp, row.max_conversion),
        expires_in_days=row.expires_in_days, starts_at=row.starts_at, ends_at=row.ends_at,
        active=bool(row.active), automatic=bool(row.automatic), claimable=bool(row.claimable),
        per_user_limit=row.per_user_limit, budget=row.budget, granted_total=row.granted_total,
        granted_count=row.granted_count, created_at=row.created_at, updated_at=row.updated_at)


def promotion_values(promo: Promotion) -> dict[str, Any]:
    return {
        "id": promo.id, "code": promo.code, "kind": promo.kind, "currency": promo.currency,
        "description": promo.description, "percent_bp": promo.percent_bp,
        "max_bonus": promo.max_bonus, "amount": promo.amount, "min_deposit": promo.min_deposit,
        "wagering_multiplier": promo.wagering_multiplier,
        "contributions_json": orjson.dumps(dict(promo.terms.contributions)).decode(),
        "default_contribution_bp": promo.terms.default_contribution_bp,
        "max_conversion": promo.terms.max_conversion, "expires_in_days": promo.expires_in_days,
        "starts_at": promo.starts_at, "ends_at": promo.ends_at, "active": promo.active,
        "automatic": promo.automatic, "claimable": promo.claimable,
        "per_user_limit": promo.per_user_limit, "budget": promo.budget,
        "granted_total": promo.granted_total, "granted_count": promo.granted_count,
        "created_at": promo.created_at, "updated_at": promo.updated_at,
    }


async def insert_promotion(conn: AsyncConnection, promo: Promotion) -> bool:
    """False when another promotion has the code."""
    done = await conn.execute(upsert(conn, promotions).values(**promotion_values(promo))
                              .on_conflict_do_nothing(index_elements=["code"]))
    return done.rowcount == 1


async def update_promotion(conn: AsyncConnection, promo: Promotion) -> None:
    """Every editable field; the counters are the grants' (never written here)."""
    values = promotion_values(promo)
    for fixed in ("id", "code", "kind", "currency", "granted_total", "granted_count",
                  "created_at"):
        values.pop(fixed)
    await conn.execute(update(promotions).where(p.id == promo.id).values(**values))


async def get_promotion(conn: AsyncConnection, promotion_id: str, *,
                        lock: bool = False) -> Promotion | None:
    stmt = select(promotions).where(p.id == promotion_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return _promotion(row) if row is not None else None


async def promotion_by_code(conn: AsyncConnection, code: str) -> Promotion | None:
    row = (await conn.execute(select(promotions).where(p.code == code.upper()))).first()
    return _promotion(row) if row is not None else None


async def promotions_of(conn: AsyncConnection, kind: str, currency: str | None = None
                        ) -> list[Promotion]:
    """The active promotions of a kind (their window is the caller's to check)."""
    stmt = select(promotions).where(p.kind == kind, p.active.is_(True))
    if currency is not None:
        stmt = stmt.where(p.currency == currency)
    rows = (await conn.execute(stmt.order_by(p.id))).all()
    return [_promotion(r) for r in rows]


async def list_promotions(conn: AsyncConnection, f: PromotionFilter, *, before: str | None,
                          limit: int) -> tuple[list[Promotion], str | None]:
    stmt = select(promotions)
    if f.kind is not None:
        stmt = stmt.where(p.kind == f.kind)
    if f.currency is not None:
        stmt = stmt.where(p.currency == f.currency)
    if f.active is not None:
        stmt = stmt.where(p.active.is_(f.active))
    if before is not None:
        stmt = stmt.where(p.id < before)
    rows = (await conn.execute(stmt.order_by(p.id.desc()).limit(limit + 1))).all()
    found = [_promotion(r) for r in rows[:limit]]
    return found, (found[-1].id if len(rows) > limit else None)


async def granted_so_far(conn: AsyncConnection, pending: Sequence[RowInserts],
                         promotion_id: str) -> int:
    """What a promotion has granted: its counter, and this batch's earlier grants."""
    total = (await conn.execute(select(p.granted_total).where(p.id == promotion_id))
             ).scalar_one()
    return int(total) + sum(int(r["granted"]) for r in _pending_rows(pending, bonuses)
                            if r["promotion_id"] == promotion_id)


async def grants_to(conn: AsyncConnection, pending: Sequence[RowInserts], promotion_id: str,
                    user_id: str) -> int:
    """How many bonuses of a promotion a user has had, this batch's earlier grants included."""
    found = (await conn.execute(
        select(func.count()).select_from(bonuses)
        .where(b.promotion_id == promotion_id, b.user_id == user_id))).scalar_one()
    return int(found) + sum(1 for r in _pending_rows(pending, bonuses)
                            if r["promotion_id"] == promotion_id and r["user_id"] == user_id)


def count_grant(promotion_id: str, amount: int) -> SqlWrite:
    async def run(conn: AsyncConnection) -> None:
        await conn.execute(update(promotions).where(p.id == promotion_id).values(
            granted_total=p.granted_total + amount, granted_count=p.granted_count + 1))

    return run


# ---------------------------------------------------------------- bonuses


def _bonus(row: Row[Any] | dict[str, Any]) -> Bonus:
    r: Any = row._mapping if isinstance(row, Row) else row
    return Bonus(
        id=r["id"], user_id=r["user_id"], promotion_id=r["promotion_id"],
        promotion_code=r["promotion_code"], kind=r["kind"], currency=r["currency"],
        source=r["source"], description=r["description"], granted=r["granted"],
        remaining=r["remaining"], wagering_required=r["wagering_required"],
        wagered=r["wagered"],
        terms=_terms(r["contributions_json"], r["default_contribution_bp"],
                     r["max_conversion"]),
        status=r["status"], converted=r["converted"], forfeited=r["forfeited"],
        transaction_id=r["transaction_id"], created_at=r["created_at"],
        expires_at=r["expires_at"], closed_at=r["closed_at"])


def bonus_row(bonus: Bonus) -> dict[str, Any]:
    return {
        "id": bonus.id, "user_id": bonus.user_id, "promotion_id": bonus.promotion_id,
        "promotion_code": bonus.promotion_code, "kind": bonus.kind,
        "currency": bonus.currency, "source": bonus.source,
        "description": bonus.description, "granted": bonus.granted,
        "remaining": bonus.remaining, "wagering_required": bonus.wagering_required,
        "wagered": bonus.wagered,
        "contributions_json": orjson.dumps(dict(bonus.terms.contributions)).decode(),
        "default_contribution_bp": bonus.terms.default_contribution_bp,
        "max_conversion": bonus.terms.max_conversion, "status": bonus.status,
        "converted": bonus.converted, "forfeited": bonus.forfeited,
        "transaction_id": bonus.transaction_id, "created_at": bonus.created_at,
        "expires_at": bonus.expires_at, "closed_at": bonus.closed_at,
    }


async def load_bonuses(conn: AsyncConnection, pending: Sequence[RowInserts], *,
                       user_id: str, currency: str, ids: Iterable[str] = ()
                       ) -> dict[str, Bonus]:
    """The user's active bonuses of a currency (and any listed by id, closed ones too), as
    this batch sees them: the rows, then the batch's earlier grants and changes."""
    wanted = sorted(set(ids))
    where = (b.user_id == user_id) & (b.currency == currency)
    status = b.status == "active"
    chosen: Any = where & (or_(status, b.id.in_(wanted)) if wanted else status)
    rows = (await conn.execute(select(bonuses).where(chosen))).all()
    found = {r.id: _bonus(r) for r in rows}
    for row in _pending_rows(pending, bonuses):
        if row["user_id"] == user_id and row["currency"] == currency:
            found[row["id"]] = _bonus(row)
    for change in _pending_rows(pending, bonus_changes):
        bonus = found.get(change["bonus_id"])
        if bonus is None and change["bonus_id"] in wanted:
            continue  # cannot happen: a listed bonus is read whatever its status
        if bonus is not None:
            bonus.remaining = change["remaining_after"]
            bonus.wagered = change["wagered_after"]
            bonus.status = change["status_after"]
    return dict(sorted(found.items()))  # ids follow time: oldest first


def new_bonuses(rows: list[Bonus]) -> RowInserts:
    return (bonuses, [bonus_row(x) for x in rows])


def changes(rows: list[dict[str, Any]]) -> RowInserts:
    return (bonus_changes, rows)


def change_bonus(before: Bonus, after: Bonus) -> SqlWrite:
    """Move a bonus row from what a job saw to what it decided; anything else is stale."""
    converted = after.converted - before.converted
    forfeited = after.forfeited - before.forfeited

    async def run(conn: AsyncConnection) -> None:
        done = await conn.execute(
            update(bonuses).where(b.id == before.id, b.remaining == before.remaining,
                                  b.wagered == before.wagered, b.status == before.status)
            .values(remaining=after.remaining, wagered=after.wagered, status=after.status,
                    converted=b.converted + converted, forfeited=b.forfeited + forfeited,
                    closed_at=after.closed_at))
        if done.rowcount != 1:
            raise StaleWrite(f"bonus {before.id} is not as its job saw it")

    return run


async def get_bonus(conn: AsyncConnection, bonus_id: str) -> Bonus | None:
    row = (await conn.execute(select(bonuses).where(b.id == bonus_id))).first()
    return _bonus(row) if row is not None else None


async def list_bonuses(conn: AsyncConnection, f: BonusFilter, *, before: str | None,
                       limit: int) -> tuple[list[Bonus], str | None]:
    """Newest first."""
    stmt = select(bonuses)
    for column, value in (("user_id", f.user_id), ("status", f.status),
                          ("currency", f.currency), ("promotion_id", f.promotion_id)):
        if value is not None:
            stmt = stmt.where(bonuses.c[column] == value)
    if before is not None:
        stmt = stmt.where(b.id < before)
    rows = (await conn.execute(stmt.order_by(b.id.desc()).limit(limit + 1))).all()
    found = [_bonus(r) for r in rows[:limit]]
    return found, (found[-1].id if len(rows) > limit else None)


# Built once: it runs before debits and purchases (one statement for a burst of them).
_ACTIVE_AMONG = (select(b.user_id, b.currency)
                 .where(b.user_id.in_(bindparam("users", expanding=True)), b.status == "active")
                 .distinct())


async def active_among(conn: AsyncConnection, users: Iterable[str]) -> set[tuple[str, str]]:
    """(user, currency) of these users' active bonuses, each once."""
    wanted = sorted(set(users))
    if not wanted:
        return set()
    rows = (await conn.execute(_ACTIVE_AMONG, {"users": wanted})).all()
    return {(r[0], r[1]) for r in rows}


async def due(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(user, currency) of active bonuses past their expiry, the longest overdue first."""
    rows = (await conn.execute(
        select(b.user_id, b.currency).where(b.status == "active", b.expires_at <= now)
        .order_by(b.expires_at).limit(limit))).all()
    return list(dict.fromkeys((r.user_id, r.currency) for r in rows))


async def order_spends(conn: AsyncConnection, pending: Sequence[RowInserts], *,
                       transaction_id: str, order_id: str) -> dict[str, tuple[int, int]]:
    """Per bonus: what a purchase (its transaction) spent of it, and what refunds of the
    order (its id) have returned so far, this batch's earlier refunds included."""
    rows = (await conn.execute(
        select(ch.bonus_id, ch.kind, ch.amount).where(or_(
            (ch.transaction_id == transaction_id) & (ch.kind == "spent"),
            (ch.reference_id == order_id) & (ch.kind == "returned"))))).all()
    found: dict[str, tuple[int, int]] = {}
    listed = [(r.bonus_id, r.kind, int(r.amount)) for r in rows]
    listed += [(r["bonus_id"], r["kind"], int(r["amount"]))
               for r in _pending_rows(pending, bonus_changes)
               if r["kind"] == "returned" and r["reference_id"] == order_id]
    for bonus_id, kind, amount in listed:
        spent, returned = found.get(bonus_id, (0, 0))
        found[bonus_id] = ((spent + amount, returned) if kind == "spent"
                           else (spent, returned + amount))
    return found


async def changes_of(conn: AsyncConnection, bonus_id: str, limit: int) -> list[Row[Any]]:
    return list((await conn.execute(
        select(bonus_changes).where(ch.bonus_id == bonus_id).order_by(ch.id.desc())
        .limit(limit))).all())


# ---------------------------------------------------------------- referrals


_REFERRAL = select(referrals, referral_rewards.c.created_at.label("rewarded_at"),
                   referral_rewards.c.order_id).outerjoin(
    referral_rewards, referral_rewards.c.referee_id == referrals.c.referee_id)


def _referral(row: Row[Any]) -> Referral:
    return Referral(row.referee_id, row.referrer_id, row.service, row.created_at,
                    row.rewarded_at, row.order_id)


async def get_referral(conn: AsyncConnection, referee_id: str) -> Referral | None:
    row = (await conn.execute(_REFERRAL.where(referrals.c.referee_id == referee_id))).first()
    return _referral(row) if row is not None else None


async def insert_referral(conn: AsyncConnection, referee_id: str, referrer_id: str,
                          service: str, now: datetime) -> bool:
    """False when the referee already has a referrer."""
    done = await conn.execute(upsert(conn, referrals).values(
        referee_id=referee_id, referrer_id=referrer_id, service=service, created_at=now)
        .on_conflict_do_nothing(index_elements=["referee_id"]))
    return done.rowcount == 1


async def rewarded(conn: AsyncConnection, pending: Sequence[RowInserts],
                   referee_id: str) -> bool:
    if any(r["referee_id"] == referee_id for r in _pending_rows(pending, referral_rewards)):
        return True
    row = (await conn.execute(select(referral_rewards.c.referee_id)
                              .where(referral_rewards.c.referee_id == referee_id))).first()
    return row is not None


def reward_row(referee_id: str, order_id: str, transaction_id: str | None,
               now: datetime) -> RowInserts:
    return (referral_rewards, [{"referee_id": referee_id, "order_id": order_id,
                                "transaction_id": transaction_id, "created_at": now}])


# ---------------------------------------------------------------- sign-ups


async def enqueue_signups(conn: AsyncConnection, user_ids: Iterable[str], now: datetime) -> None:
    """Users whose sign-up bonuses are due, once each (sorted: concurrent batches that
    enqueue the same users take the rows' locks in one order)."""
    ordered = sorted(set(user_ids))
    if not ordered:
        return
    await conn.execute(
        upsert(conn, bonus_signups).on_conflict_do_nothing(index_elements=["user_id"]),
        [{"user_id": u, "status": "pending", "created_at": now, "done_at": None}
         for u in ordered])


async def pending_signups(conn: AsyncConnection, limit: int) -> list[tuple[str, datetime]]:
    rows = (await conn.execute(
        select(bonus_signups.c.user_id, bonus_signups.c.created_at)
        .where(bonus_signups.c.status == "pending")
        .order_by(bonus_signups.c.created_at).limit(limit))).all()
    return [(r.user_id, r.created_at) for r in rows]


async def signup_pending(conn: AsyncConnection, user_id: str) -> bool:
    row = (await conn.execute(select(bonus_signups.c.status)
                              .where(bonus_signups.c.user_id == user_id))).first()
    return row is not None and row.status == "pending"


async def signups_done(conn: AsyncConnection, user_ids: Sequence[str], now: datetime) -> None:
    """Sign-ups with no promotion to grant (none was running when the worker looked)."""
    await conn.execute(update(bonus_signups).where(
        bonus_signups.c.user_id.in_(sorted(user_ids)), bonus_signups.c.status == "pending")
        .values(status="done", done_at=now))


def signup_done(user_id: str, now: datetime) -> SqlWrite:
    async def run(conn: AsyncConnection) -> None:
        done = await conn.execute(
            update(bonus_signups).where(bonus_signups.c.user_id == user_id,
                                        bonus_signups.c.status == "pending")
            .values(status="done", done_at=now))
        if done.rowcount != 1:
            raise StaleWrite(f"the sign-up of {user_id} is not pending any more")

    return run


# ---------------------------------------------------------------- top-ups with a code


async def attach_order(conn: AsyncConnection, order_id: str, user_id: str,
                       promotion_id: str, now: datetime) -> None:
    await conn.execute(upsert(conn, promotion_orders).values(
        order_id=order_id, user_id=user_id, promotion_id=promotion_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["order_id"]))


async def order_promotion(conn: AsyncConnection, order_id: str) -> str | None:
    found: str | None = (await conn.execute(
        select(promotion_orders.c.promotion_id)
        .where(promotion_orders.c.order_id == order_id))).scalar_one_or_none()
    return found


def audit_row(entry: dict[str, Any]) -> RowInserts:
    """An audit entry (``core.audit.entry``), committed with the change it records."""
    return (audit_log, [entry])
