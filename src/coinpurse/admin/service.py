"""Admin writes: adjustments (with four-eyes approval above a threshold) and reversals.

Both post through the ledger with an idempotency claim of their own (scope ``adjustment`` or
``reversal``), so an adjustment is applied and a transaction reversed at most once, however
often the request is retried or raced.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Row, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.admin.errors import AlreadyReversed
from coinpurse.admin.tables import adjustments, reversals
from coinpurse.auth.tokens import Principal
from coinpurse.core import audit
from coinpurse.core.errors import Conflict, Forbidden, NotFound
from coinpurse.ledger.errors import IdempotencyKeyReused
from coinpurse.ledger.idempotency import Claim, StoredResponse
from coinpurse.ledger.model import (
    AccountKey,
    AccountState,
    Operation,
    Outcome,
    Posting,
    Rejection,
    Transaction,
    TransactionSpec,
)
from coinpurse.ledger.service import JobResult, RowInserts, SqlWrite
from coinpurse.ledger.tables import transactions
from coinpurse.ledger.views import rejection_problem, transaction_view
from coinpurse.state import AppState

ADJUSTMENT_ACCOUNT = "service:adjustments"
FLOW_SERVICES = frozenset({"payments", "withdrawals"})
_ADJUSTMENT_NS = uuid.UUID("6f1d0c3e-4b7a-4f43-9a55-1b0b2c6d7e8f")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def adjustment_view(row: Row[Any] | dict[str, Any]) -> dict[str, Any]:
    r = row if isinstance(row, dict) else row._mapping
    return {
        "id": r["id"], "user_id": r["user_id"], "currency": r["currency"],
        "amount": r["amount"], "direction": r["direction"], "reason": r["reason"],
        "status": r["status"], "requested_by": r["requested_by"],
        "decided_by": r["decided_by"], "decision_note": r["decision_note"],
        "transaction_id": r["transaction_id"], "created_at": _iso(r["created_at"]),
        "decided_at": _iso(r["decided_at"]),
    }


async def get_adjustment(conn: AsyncConnection, adjustment_id: str) -> Row[Any]:
    row = (await conn.execute(
        select(adjustments).where(adjustments.c.id == adjustment_id))).first()
    if row is None:
        raise NotFound(f"no adjustment {adjustment_id!r}")
    return row


async def create_adjustment(state: AppState, admin: Principal, *, user_id: str, currency: str,
                            amount: int, direction: str, reason: str, ip: str,
                            idem: str) -> dict[str, Any]:
    """Idempotent per admin and key: the id is derived from them, so a retry finds the row."""
    adj_id = str(uuid.uuid5(_ADJUSTMENT_NS, f"{admin.user_id}\n{idem}"))
    needs_approval = amount > state.settings.adjustment_approval_above
    now = datetime.now(UTC)

    async def existing() -> dict[str, Any] | None:
        async with state.db.connect() as conn:
            found = (await conn.execute(
                select(adjustments).where(adjustments.c.id == adj_id))).first()
        if found is None:
            return None
        same = (found.user_id, found.currency, found.amount, found.direction,
                found.reason) == (user_id, currency, amount, direction, reason)
        if not same:
            raise IdempotencyKeyReused("this idempotency key was used for another adjustment")
        if found.status == "approving" and found.decided_by == admin.user_id:
            return await _apply(state, adj_id)  # resume after a crash
        return adjustment_view(found)

    if (done := await existing()) is not None:
        return done
    try:
        async with state.db.begin() as conn:
            await conn.execute(adjustments.insert().values(
                id=adj_id, user_id=user_id, currency=currency, amount=amount,
                direction=direction, reason=reason,
                status="pending" if needs_approval else "approving",
                requested_by=admin.user_id, created_at=now,
                decided_by=None if needs_approval else admin.user_id))
            await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                               action="admin.adjustment_create", target=adj_id,
                               details={"user_id": user_id, "currency": currency,
                                        "amount": amount, "direction": direction,
                                        "reason": reason, "needs_approval": needs_approval},
                               ip=ip)
    except IntegrityError:  # the same key at the same moment: answer as a retry would get
        if (done := await existing()) is None:
            raise
        return done
    if needs_approval:
        async with state.db.connect() as conn:
            return adjustment_view(await get_adjustment(conn, adj_id))
    return await _apply(state, adj_id)


async def decide(state: AppState, admin: Principal, adjustment_id: str, *, approve: bool,
                 note: str | None, ip: str) -> dict[str, Any]:
    """Exactly one decision wins: the row moves out of ``pending`` with a conditional UPDATE."""
    now = datetime.now(UTC)
    async with state.db.begin() as conn:
        row = await get_adjustment(conn, adjustment_id)
        resuming = approve and row.status == "approving" and row.decided_by == admin.user_id
        if not resuming:
            if row.status != "pending":
                raise Conflict(f"the adjustment is {row.status}, not pending")
            if row.requested_by == admin.user_id:
                raise Forbidden("a second, different admin must decide this adjustment")
            won = await conn.execute(
                update(adjustments)
                .where(adjustments.c.id == adjustment_id, adjustments.c.status == "pending")
                .values(status="approving" if approve else "rejected",
                        decided_by=admin.user_id, decision_note=note, decided_at=now))
            if won.rowcount != 1:
                raise Conflict("another admin decided this adjustment first")
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="admin.adjustment_" + ("approve" if approve else "reject"),
                           target=adjustment_id, details={"note": note}, ip=ip)
    if not approve:
        async with state.db.connect() as conn:
            return adjustment_view(await get_adjustment(conn, adjustment_id))
    return await _apply(state, adjustment_id)


def _record(adjustment_id: str, status: str, tx_id: str | None, note: str | None) -> SqlWrite:
    """The outcome on the row, once: only an adjustment still ``approving`` changes."""

    async def run(conn: AsyncConnection) -> None:
        await conn.execute(
            update(adjustments).where(adjustments.c.id == adjustment_id,
                                      adjustments.c.status == "approving")
            .values(status=status, transaction_id=tx_id, decided_at=datetime.now(UTC),
                    decision_note=note if note else adjustments.c.decision_note))

    return run


async def _apply(state: AppState, adjustment_id: str) -> dict[str, Any]:
    """Post an approved adjustment once, and record the outcome in the same commit.

    The claim keeps a concurrent retry out; the ledger itself (a transaction posted for this
    adjustment) keeps a resume out once the claim has been purged."""
    async with state.db.connect() as conn:
        row = await get_adjustment(conn, adjustment_id)
    user = f"user:{row.user_id}"
    src, dst = ((ADJUSTMENT_ACCOUNT, user) if row.direction == "credit"
                else (user, ADJUSTMENT_ACCOUNT))
    spec = TransactionSpec(
        kind="adjustment", postings=(Posting(src, dst, row.amount, row.currency),),
        description="Balance adjustment", reference_id=row.id,
        initiator=f"admin:{row.decided_by or row.requested_by}", service="adjustments",
        internal_notes=row.reason,
        metadata={"adjustment_id": row.id, "requested_by": row.requested_by,
                  "approved_by": row.decided_by},
    )
    earlier: list[str] = []  # the transaction an earlier apply posted, if any

    async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> list[Operation]:
        t = transactions.c
        found = (await conn.execute(select(t.id).where(
            t.reference_id == row.id, t.kind == "adjustment",
            t.initiator.like("admin:%")))).scalar()
        earlier[:] = [found] if found else []
        return [] if found else [spec]

    def outcome(outcomes: list[Outcome]) -> tuple[str, str | None, str | None]:
        if not outcomes:
            return "applied", earlier[0], None
        (o,) = outcomes
        if isinstance(o, Rejection):
            return "failed", None, o.detail
        assert isinstance(o, Transaction)
        return "applied", o.id, None

    def render(outcomes: list[Outcome]) -> StoredResponse:
        if outcomes and isinstance(outcomes[0], Rejection):
            return rejection_problem(outcomes[0])
        return StoredResponse(201, orjson.dumps({"transaction_id": outcome(outcomes)[1]}))

    def side_writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        return [_record(row.id, *outcome(outcomes))]

    result = await state.ledger.submit(
        [spec], render=render, claim=Claim("adjustment", row.id, "apply"), prepare=prepare,
        side_writes=side_writes)
    body = orjson.loads(result.response.body)
    status, tx_id, note = ("applied", body.get("transaction_id"), None) \
        if result.response.status == 201 else ("failed", None, body.get("detail"))
    async with state.db.begin() as conn:
        await _record(row.id, status, tx_id, note)(conn)  # a replayed claim: no side writes
        return adjustment_view(await get_adjustment(conn, row.id))


async def reverse(state: AppState, admin: Principal, transaction_id: str, *, reason: str,
                  ip: str) -> tuple[int, bytes]:
    async with state.db.connect() as conn:
        original = (await conn.execute(
            select(transactions).where(transactions.c.id == transaction_id))).first()
        if original is None:
            raise NotFound(f"no transaction {transaction_id!r}")
        done = (await conn.execute(select(reversals.c.reversal_id).where(
            reversals.c.original_id == transaction_id))).first()
    if done is not None:
        raise AlreadyReversed(f"already reversed by {done.reversal_id}",
                              reversal_transaction_id=done.reversal_id)
    if original.kind == "reversal":
        raise Conflict("a reversal is not reversed; post a new transaction instead")
    if original.service in FLOW_SERVICES:
        # Its order or withdrawal would still say it happened: a later provider refund would
        # take the coins a second time, a paid-out withdrawal would be paid back.
        raise Conflict(f"this {original.kind} belongs to the {original.service} flow; undo it "
                       "there (refund the payment at the provider, reject the withdrawal)")
    postings = [Posting(p["destination"], p["source"], p["amount"], p["currency"])
                for p in reversed(orjson.loads(original.postings_json))]
    spec = TransactionSpec(
        kind="reversal", postings=tuple(postings),
        description=f"Reversal: {original.description}"[:255], reference_id=transaction_id,
        initiator=f"admin:{admin.user_id}", service=original.service, internal_notes=reason,
        metadata={"reverses": transaction_id},
    )
    now = datetime.now(UTC)

    def render(outcomes: list[Outcome]) -> StoredResponse:
        (o,) = outcomes
        if isinstance(o, Rejection):
            return rejection_problem(o)
        assert isinstance(o, Transaction)
        return StoredResponse(201, orjson.dumps(transaction_view(o)))

    def side_writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        return [(reversals, [{"original_id": transaction_id, "reversal_id": o.id,
                              "reversed_by": admin.user_id, "reason": reason,
                              "created_at": now}
                             for o in outcomes if isinstance(o, Transaction)])]

    # The claim is the transaction itself: a second reversal finds the first one's answer.
    result: JobResult = await state.ledger.submit(
        [spec], render=render, side_writes=side_writes, store_refusals=False,
        claim=Claim("reversal", transaction_id, "reverse"))
    if result.replayed:
        first = orjson.loads(result.response.body)
        raise AlreadyReversed(f"already reversed by {first.get('id')}",
                              reversal_transaction_id=first.get("id"))
    async with state.db.begin() as conn:
        await audit.record(conn, actor=admin.user_id, actor_role=admin.role,
                           action="admin.reverse", target=transaction_id,
                           details={"reason": reason, "status": result.response.status},
                           ip=ip)
    return result.response.status, result.response.body
