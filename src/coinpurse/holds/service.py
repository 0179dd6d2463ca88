"""Holds: reserve now, capture or release later; expired holds release themselves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.ledger.idempotency import StoredResponse
from coinpurse.ledger.model import HoldOutcome, HoldState, Outcome, Rejection, ReleaseHold
from coinpurse.ledger.service import Ledger
from coinpurse.ledger.tables import holds
from coinpurse.ledger.views import rejection_problem

log = logging.getLogger("coinpurse.holds")
EXPIRE_BATCH = 500


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def hold_view(hold: HoldState) -> dict[str, Any]:
    released = hold.amount - hold.captured_amount if hold.status != "held" else 0
    return {
        "id": hold.id,
        "status": hold.status,
        "user_id": hold.address.removeprefix("user:"),
        "currency": hold.currency,
        "amount": hold.amount,
        "captured_amount": hold.captured_amount,
        "released_amount": released,
        "destination": hold.destination,
        "kind": hold.kind,
        "description": hold.description,
        "reference_id": hold.reference_id,
        "metadata": dict(hold.metadata),
        "service": hold.service,
        "transaction_id": hold.transaction_id,
        "created_at": _iso(hold.created_at),
        "expires_at": _iso(hold.expires_at),
        "closed_at": _iso(hold.closed_at),
    }


def render_hold(status: int) -> Callable[[list[Outcome]], StoredResponse]:
    def render(outcomes: list[Outcome]) -> StoredResponse:
        (outcome,) = outcomes
        if isinstance(outcome, Rejection):
            return rejection_problem(outcome)
        assert isinstance(outcome, HoldOutcome)
        body = hold_view(outcome.hold)
        body["wallet"] = outcome.balance.as_dict()
        return StoredResponse(status, orjson.dumps(body))

    return render


async def get_hold(db: AsyncEngine, hold_id: str) -> HoldState | None:
    async with db.connect() as conn:
        row = (await conn.execute(select(holds).where(holds.c.id == hold_id))).first()
    if row is None:
        return None
    return HoldState(
        id=row.id, address=row.address, currency=row.currency, amount=row.amount,
        destination=row.destination, status=row.status, service=row.service, kind=row.kind,
        description=row.description, reference_id=row.reference_id,
        metadata=orjson.loads(row.metadata_json), created_at=row.created_at,
        expires_at=row.expires_at, captured_amount=row.captured_amount,
        transaction_id=row.transaction_id, closed_at=row.closed_at,
    )


async def expire_due(db: AsyncEngine, ledger: Ledger, now: datetime | None = None) -> int:
    """Release every hold past its expiry; returns how many this call expired."""
    now = now or datetime.now(UTC)
    async with db.connect() as conn:
        ids = (await conn.execute(
            select(holds.c.id)
            .where(holds.c.status == "held", holds.c.expires_at <= now)
            .order_by(holds.c.expires_at)
            .limit(EXPIRE_BATCH)
        )).scalars().all()
    if not ids:
        return 0

    def render(_outcomes: list[Outcome]) -> StoredResponse:
        return StoredResponse(200, b"{}")

    result = await ledger.submit(
        [ReleaseHold(hold_id=i, service=None, status="expired") for i in ids], render=render
    )
    assert result.outcomes is not None
    # A hold captured or voided meanwhile answers hold_not_open: nothing to do for it.
    return sum(isinstance(o, HoldOutcome) for o in result.outcomes)
