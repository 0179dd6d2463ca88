"""The event log: every committed change writes its events in the same database transaction
(the outbox), and readers follow it with a cursor.

The ledger's hook (``Outbox``) writes ``transaction.posted`` for every transaction and
``hold.placed|captured|voided|expired`` for every hold operation of each batch. Domains add
their own events in the same commit: inside a ledger job with ``event_write(...)`` among its
side writes, in their own transactions with ``emit(conn, ...)``.

Readers never miss an event and never see one twice: ids follow the writing transactions and
are only shown once no running transaction can still write below them (repository.py).
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.clock import iso, utcnow
from coinpurse.core.db import AFTER_COMMIT, after_commit
from coinpurse.core.errors import ValidationFailed
from coinpurse.events import monitors, repository
from coinpurse.events.repository import NewEvent, StoredEvent
from coinpurse.ledger.model import AccountKey, Balance, HoldState, Transaction
from coinpurse.ledger.service import CommittedBatch, SqlWrite

TYPE_RE = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)*$")
PATTERN_RE = re.compile(r"^([a-z][a-z_]*(\.[a-z][a-z_]*)*)(\.\*)?$|^\*$")
TYPES_MAX = 32
HOLD_EVENTS = {"held": "hold.placed", "captured": "hold.captured", "voided": "hold.voided",
               "expired": "hold.expired"}


class Wakeup:
    """Wakes this process's readers (live streams, consumers) when events may have been
    committed. ``ring``: this process committed events (listeners, such as a Redis
    publisher, tell other processes); ``wake``: events may have been committed anywhere
    (a NOTIFY or a Redis message heard). ``generation`` counts wake-ups, so a reader that
    was busy when one came does not then sleep through it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.generation = 0
        self._listeners: list[Callable[[], None]] = []
        _LOCAL_WAKEUPS.add(self)

    def on_ring(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def ring(self) -> None:
        self.wake()
        for listener in self._listeners:
            listener()

    def wake(self) -> None:
        self.generation += 1
        self._event.set()
        self._event = asyncio.Event()  # waiters of the rung event wake; new ones wait anew

    async def wait(self, timeout_s: float, since: int | None = None) -> bool:
        """Until the next wake-up (at once if one came after generation ``since``)."""
        if since is not None and since != self.generation:
            return True
        try:
            await asyncio.wait_for(self._event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


_LOCAL_WAKEUPS: weakref.WeakSet[Wakeup] = weakref.WeakSet()


def announce() -> None:
    """Events were committed by this process outside a ledger batch: ring its wake-ups."""
    for wakeup in list(_LOCAL_WAKEUPS):
        wakeup.ring()


def _announce_after_commit(conn: AsyncConnection) -> None:
    hooks = conn.info.get(AFTER_COMMIT, [])
    if announce not in hooks:
        after_commit(conn, announce)


def balance_view(key: AccountKey, b: Balance) -> dict[str, Any]:
    return {"address": key[0], "currency": key[1], "balance": b.balance, "held": b.held,
            "available": b.available, "version": b.version}


def transaction_data(tx: Transaction) -> dict[str, Any]:
    spec = tx.spec
    return {
        "id": tx.id, "kind": spec.kind, "description": spec.description,
        "reference_id": spec.reference_id, "metadata": dict(spec.metadata),
        "postings": [{"source": p.source, "destination": p.destination, "amount": p.amount,
                      "currency": p.currency} for p in spec.postings],
        "service": spec.service, "initiator": spec.initiator,
        "internal_notes": spec.internal_notes, "created_at": iso(tx.created_at),
        "balances": [balance_view(k, b) for k, b in sorted(tx.balances_after.items())],
    }


def hold_data(hold: HoldState, balance: Balance) -> dict[str, Any]:
    return {
        "hold": {
            "id": hold.id, "status": hold.status, "address": hold.address,
            "currency": hold.currency, "amount": hold.amount,
            "captured_amount": hold.captured_amount, "destination": hold.destination,
            "kind": hold.kind, "description": hold.description,
            "reference_id": hold.reference_id, "metadata": dict(hold.metadata),
            "service": hold.service, "transaction_id": hold.transaction_id,
            "created_at": iso(hold.created_at), "expires_at": iso(hold.expires_at),
            "closed_at": iso(hold.closed_at),
        },
        "balance": balance_view((hold.address, hold.currency), balance),
    }


def batch_events(batch: CommittedBatch) -> list[NewEvent]:
    """A batch's events, in the order its operations were applied."""
    captures = {o.transaction.id for o in batch.holds if o.transaction is not None}
    out = [NewEvent("transaction.posted", transaction_data(tx)) for tx in batch.transactions
           if tx.id not in captures]
    for o in batch.holds:
        if o.transaction is not None:  # a capture posts its transaction with the hold
            out.append(NewEvent("transaction.posted", transaction_data(o.transaction)))
        out.append(NewEvent(HOLD_EVENTS[o.hold.status], hold_data(o.hold, o.balance)))
    return out


class Outbox:
    """The ledger hook that writes each batch's events in its commit, then wakes readers.

    Per batch, inside its transaction, on PostgreSQL one statement: it writes the batch's
    events, notifies the listening processes and finds the balance monitors of the accounts
    the batch's transactions changed; a crossing's event is written after them."""

    def __init__(self, wakeup: Wakeup) -> None:
        self.wakeup = wakeup

    async def write(self, conn: AsyncConnection, batch: CommittedBatch) -> None:
        new = batch_events(batch)
        if not batch.transactions:
            await repository.append(conn, new, batch.at)
            return
        # The monitors are looked up with the batch's events written (one round trip); the
        # crossings, rarely any, follow them (a second statement only then).
        moved = monitors.changes(batch.transactions)
        found = await repository.append_finding_monitors(
            conn, new, batch.at, {key for _tx, key, _b, _a in moved})
        await repository.append(conn, monitors.crossed(moved, found), batch.at)

    def committed(self, batch: CommittedBatch) -> None:
        if batch.transactions or batch.holds:
            self.wakeup.ring()


async def emit(conn: AsyncConnection, type_: str, data: dict[str, Any],
               at: datetime | None = None) -> None:
    """Write one event in the caller's transaction (a domain change outside the ledger)."""
    assert TYPE_RE.match(type_), type_
    await repository.append(conn, [NewEvent(type_, data)], at or utcnow())
    _announce_after_commit(conn)


def event_write(type_: str, data: dict[str, Any]) -> SqlWrite:
    """An event as a side write of a ledger job: it commits with the job's money movement."""
    assert TYPE_RE.match(type_), type_

    async def write(conn: AsyncConnection) -> None:
        await repository.append(conn, [NewEvent(type_, data)], utcnow())
        _announce_after_commit(conn)

    return write


@dataclass(frozen=True, slots=True)
class TypeFilter:
    exact: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: str | None) -> TypeFilter:
        """``a.b,c.*`` (or nothing, or ``*``: every type); 422 on anything else."""
        if raw is None or raw.strip() in ("", "*"):
            return cls()
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        bad = [p for p in parts if not PATTERN_RE.match(p)]
        if bad or len(parts) > TYPES_MAX:
            raise ValidationFailed(
                f"types must be at most {TYPES_MAX} event types or patterns such as "
                "topup.* (comma-separated)",
                [{"loc": ["query", "types"], "msg": "invalid event types", "type": "value_error"}])
        if "*" in parts:
            return cls()
        exact = tuple(p for p in parts if not p.endswith(".*"))
        prefixes = tuple(p[:-1] for p in parts if p.endswith(".*"))
        return cls(exact, prefixes)

    def matches(self, type_: str) -> bool:
        if not self.exact and not self.prefixes:
            return True
        return type_ in self.exact or type_.startswith(self.prefixes)


async def page(db: AsyncEngine, *, after: int, limit: int,
               types: TypeFilter) -> tuple[list[StoredEvent], int]:
    """Events after the cursor; and the cursor to continue from (unchanged if none)."""
    async with db.connect() as conn:
        found = await repository.read(conn, after=after, limit=limit, types=types.exact,
                                      prefixes=types.prefixes)
    return found, (found[-1].id if found else after)


async def purge(db: AsyncEngine, retention_days: int, chunk: int = 5000) -> int:
    """Delete events past their retention, and finished webhook deliveries and e-mails as
    old; a bounded chunk per transaction."""
    cutoff = utcnow() - timedelta(days=retention_days)
    total = 0
    for delete in (repository.delete_before, repository.delete_done_before):
        while True:
            async with db.begin() as conn:
                n = await delete(conn, cutoff, chunk)
            total += n
            if n < chunk:
                break
    return total

