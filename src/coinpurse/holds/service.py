"""Holds: reserve now, capture or release later; expired holds release themselves.

The holds table is the ledger's (only the ledger writes it, under its locks), so a hold is
read with ``ledger.queries`` and changed by handing the ledger an operation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.bonuses import service as bonuses
from coinpurse.core.clock import utcnow
from coinpurse.core.errors import NotFound
from coinpurse.core.ids import new_id
from coinpurse.holds import schemas as s
from coinpurse.ledger import queries
from coinpurse.ledger.idempotency import StoredResponse, claim
from coinpurse.ledger.model import (
    CaptureHold,
    HoldOutcome,
    HoldState,
    Operation,
    Outcome,
    PlaceHold,
    Rejection,
    ReleaseHold,
)
from coinpurse.ledger.service import JobResult, Ledger
from coinpurse.ledger.views import rejection_problem

EXPIRE_BATCH = 500


def render_hold(status: int) -> Callable[[list[Outcome]], StoredResponse]:
    """The hold after the operation, with the user's balance; or the refusal."""

    def render(outcomes: list[Outcome]) -> StoredResponse:
        (outcome,) = outcomes
        if isinstance(outcome, Rejection):
            return rejection_problem(outcome)
        assert isinstance(outcome, HoldOutcome)
        return StoredResponse(status, s.HoldOut.of(outcome.hold, outcome.balance).answer())

    return render


def _expired(_outcomes: list[Outcome]) -> StoredResponse:
    return StoredResponse(200, b"{}")  # nobody waits for this answer


@dataclass(frozen=True, slots=True)
class Holds:
    db: AsyncEngine
    ledger: Ledger

    async def _submit(self, service: str, idem: str, op: Operation, name: str,
                      payload: object, status: int) -> JobResult:
        return await self.ledger.submit(
            [op], render=render_hold(status),
            claim=claim(f"service:{service}", idem, name, payload))

    async def place(self, service: str, body: s.HoldIn, idem: str) -> JobResult:
        """Holds reserve cash only: bonus money is never held (see the README's Bonuses)."""
        if body.destination is not None:
            bonuses.refuse_bonus_wallets([body.destination])
        op = PlaceHold(
            hold_id=new_id(), address=f"user:{body.user_id}", currency=body.currency,
            amount=body.amount, destination=body.destination or f"service:{service}",
            description=body.description, reference_id=body.reference_id, service=service,
            expires_at=utcnow() + timedelta(seconds=body.expires_in_s), kind=body.kind,
            metadata=body.metadata,
        )
        # The hold id and expiry are decided here, so hash only what the caller sent.
        return await self._submit(service, idem, op, "hold", body.model_dump(mode="json"), 201)

    async def get(self, service: str, hold_id: str) -> HoldState:
        """Only the service that placed a hold sees it; another's is ``not_found``."""
        async with self.db.connect() as conn:
            hold = await queries.hold(conn, hold_id)
        if hold is None or hold.service != service:
            raise NotFound(f"no hold {hold_id!r}")
        return hold

    async def open_of_user(self, user_id: str, limit: int) -> list[HoldState]:
        """What is reserved in a user's wallets now, newest first (the user's own view)."""
        async with self.db.connect() as conn:
            return await queries.open_holds(conn, user_id, limit)

    async def capture(self, service: str, hold_id: str, amount: int | None,
                      idem: str) -> JobResult:
        """The ledger checks the hold's owner and state again under its row lock."""
        op = CaptureHold(hold_id=hold_id, service=service, amount=amount)
        return await self._submit(service, idem, op, f"capture:{hold_id}", {"amount": amount},
                                  200)

    async def void(self, service: str, hold_id: str, idem: str) -> JobResult:
        op = ReleaseHold(hold_id=hold_id, service=service, status="voided")
        return await self._submit(service, idem, op, f"void:{hold_id}", {}, 200)

    async def expire_due(self, now: datetime | None = None) -> int:
        """Release up to ``EXPIRE_BATCH`` holds past their expiry; returns how many."""
        async with self.db.connect() as conn:
            ids = await queries.due_holds(conn, now or utcnow(), EXPIRE_BATCH)
        if not ids:
            return 0
        result = await self.ledger.submit(
            [ReleaseHold(hold_id=i, service=None, status="expired") for i in ids],
            render=_expired)
        assert result.outcomes is not None
        # A hold captured or voided meanwhile answers hold_not_open: nothing to do for it.
        return sum(isinstance(o, HoldOutcome) for o in result.outcomes)
