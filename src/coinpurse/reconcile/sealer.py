"""The sealer: chains committed transactions, shortly after they commit, in an order that
never changes.

Why not chain each batch inside its own commit: every batch would have to lock the chain's
head until it commits, so batches from every committer and process would commit one after
the other, fsync included. The sealer instead follows the event log: every ledger
transaction has exactly one ``transaction.posted`` event, written in its commit, and event
ids only grow in the order readers may see them, also with several writing processes on
PostgreSQL (events/repository.py). For each event, in that order, it reads the transaction
back from the ledger's tables, hashes its canonical form (canonical.py) with the previous
hash, and stores the seal (sequence, transaction id, hash, previous hash). The write path
does not wait for any of it.

One sealer at a time: on PostgreSQL the consumer's cursor row is locked (FOR UPDATE) for the
pass; on SQLite, whose single writer must not wait for hashing, the pass reads and hashes in
a read transaction, then writes in a short one that first checks that nobody sealed
meanwhile.

A transaction written straight into the tables has no event, so it is never sealed: runs
report transactions still unsealed after ``COINPURSE_SEAL_LAG_S``. Events are deleted
after their retention (30 days): the sealer must run well within it (every serve and worker
process runs it each ``COINPURSE_SEAL_INTERVAL_S``).

The genesis: when sealing starts on a ledger that has history (transactions older than the
oldest event kept, or written before the event log existed), those are sealed first, in
(created_at, id) order; history before the first seal is taken as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.clock import utcnow
from coinpurse.events import repository as events_repo
from coinpurse.reconcile import repository as repo
from coinpurse.reconcile.canonical import GENESIS_PREVIOUS, seal_hash
from coinpurse.reconcile.model import Seal

log = logging.getLogger("coinpurse.reconcile")

CURSOR = "ledger-sealer"
CHUNK = 1000  # events per pass: bounds how long a pass holds the cursor
GENESIS_CHUNK = 1000
POSTED = ("transaction.posted",)


@dataclass(slots=True)
class Plan:
    """What one pass will write: seals on top of ``base`` and the cursor's new position."""

    base_sequence: int
    seals: list[Seal] = field(default_factory=list)
    events_read: int = 0
    last_event_id: int | None = None


async def _seal_all(conn: AsyncConnection, plan: Plan, previous: str,
                    items: Sequence[tuple[str, int | None]], now: datetime) -> str:
    """Seal ``(transaction id, event id)`` pairs in order, from their rows."""
    ids = [tx_id for tx_id, _ in items]
    txs = await repo.transactions_by_id(conn, ids)
    ents = await repo.entries_of(conn, ids)
    for tx_id, event_id in items:
        tx, tx_entries = txs.get(tx_id), ents.get(tx_id, [])
        if tx is None:
            log.error("transaction %s has a transaction.posted event but is not in the "
                      "database: sealed as missing, every verification will report it", tx_id)
        sequence = plan.base_sequence + len(plan.seals) + 1
        digest = seal_hash(sequence, previous, tx_id, tx, tx_entries)
        plan.seals.append(Seal(sequence, tx_id, len(tx_entries), digest, previous, event_id,
                               now, tx.created_at if tx is not None else None))
        previous = digest
    return previous


async def _plan(conn: AsyncConnection, after: int, now: datetime) -> Plan:
    top = await repo.head(conn)
    plan = Plan(base_sequence=top.sequence if top else 0)
    previous = top.hash if top else GENESIS_PREVIOUS
    if top is None and after == 0:
        previous = await _genesis(conn, plan, previous, now)
    posted = await events_repo.posted_transactions(conn, after=after, limit=CHUNK)
    plan.events_read = len(posted)
    if not posted:
        return plan
    plan.last_event_id = posted[-1][0]
    wanted: list[tuple[str, int | None]] = []
    seen = {s.transaction_id for s in plan.seals}
    already = await repo.sealed_among(conn, [tx_id for _, tx_id in posted])
    for event_id, tx_id in posted:
        if tx_id in already or tx_id in seen:
            continue  # sealed in the genesis: its event came after the genesis read
        seen.add(tx_id)
        wanted.append((tx_id, event_id))
    await _seal_all(conn, plan, previous, wanted, now)
    return plan


async def _genesis(conn: AsyncConnection, plan: Plan, previous: str, now: datetime) -> str:
    """Seal the transactions no event is left for: older than the oldest event kept."""
    first = await events_repo.read(conn, after=0, limit=1, types=POSTED)
    before = first[0].created_at if first else None
    key: tuple[datetime, str] | None = None
    while batch := await repo.genesis_batch(conn, before=before, after=key,
                                            limit=GENESIS_CHUNK):
        key = batch[-1]
        previous = await _seal_all(conn, plan, previous, [(i, None) for _, i in batch], now)
    if plan.seals:
        log.info("sealed the ledger's history before its oldest event: %d transactions",
                 len(plan.seals))
    return previous


@dataclass(slots=True)
class Sealer:
    db: AsyncEngine
    _expected_after: int | None = None  # SQLite: the cursor this process last saw

    async def seal_pending(self) -> int:
        """Seal everything committed and readable now; the number of seals written."""
        total = 0
        while True:
            sealed, read = await self.seal_pass()
            total += sealed
            if read < CHUNK:
                return total

    async def seal_pass(self) -> tuple[int, int]:
        """One pass: (seals written, events read)."""
        now = utcnow()
        if self.db.dialect.name == "postgresql":
            async with self.db.begin() as conn:
                after = await events_repo.cursor(conn, CURSOR, now, lock=True)
                plan = await _plan(conn, after, now)
                await self._write(conn, plan, now)
            return len(plan.seals), plan.events_read
        return await self._sqlite_pass(now)

    async def _sqlite_pass(self, now: datetime) -> tuple[int, int]:
        if self._expected_after is None:
            async with self.db.begin() as conn:
                self._expected_after = await events_repo.cursor(conn, CURSOR, now, lock=False)
        after = self._expected_after
        async with self.db.connect() as conn:
            plan = await _plan(conn, after, now)
        if not plan.seals and plan.last_event_id is None:
            return 0, 0
        async with self.db.begin() as conn:
            current = await events_repo.cursor(conn, CURSOR, now, lock=False)
            top = await repo.head(conn)
            if current != after or (top.sequence if top else 0) != plan.base_sequence:
                self._expected_after = current  # another process sealed: plan again
                return 0, CHUNK
            await self._write(conn, plan, now)
        self._expected_after = plan.last_event_id or after
        return len(plan.seals), plan.events_read

    @staticmethod
    async def _write(conn: AsyncConnection, plan: Plan, now: datetime) -> None:
        await repo.insert_seals(conn, plan.seals)
        if plan.last_event_id is not None:
            await events_repo.advance(conn, CURSOR, plan.last_event_id, now)
