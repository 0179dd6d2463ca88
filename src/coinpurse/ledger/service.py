"""The write path: group commit of concurrent requests into one database transaction.

Requests become jobs on a queue. A committer task takes every job waiting (up to
``batch_max``), applies them in one database transaction and answers each. There is no timer:
while one batch commits the next one gathers, so an idle process answers at once and a busy
one batches more. A refused transaction fails only its own job; a database error on a batch
re-runs its jobs one by one so that one bad job cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uuid_utils
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse import idempotency
from coinpurse.cluster import faults
from coinpurse.errors import (
    CoinpurseError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    ServiceUnavailable,
)
from coinpurse.idempotency import Claim, StoredResponse
from coinpurse.ledger import engine as ledger_engine
from coinpurse.ledger import retry, store
from coinpurse.ledger.model import (
    AccountKey,
    AccountState,
    CaptureHold,
    HoldOutcome,
    HoldState,
    Operation,
    Outcome,
    PlaceHold,
    Rejection,
    ReleaseHold,
    Transaction,
    TransactionSpec,
)

log = logging.getLogger("coinpurse.ledger")

Renderer = Callable[[list[Outcome]], StoredResponse]
# Run in the batch's transaction after the money movement: an UPDATE of a domain row whose
# state must change in the same commit (a payment order marked paid, a withdrawal approved).
SqlWrite = Callable[[AsyncConnection], Awaitable[None]]
RowInserts = tuple[Table, list[dict[str, Any]]]
# What to write in the same commit as the money movement: rows to insert (gift records,
# outbox events...) and, rarely, statements to run.
SideWrites = Callable[[list[Outcome]], list[RowInserts | SqlWrite]]
# Decides a job's operations inside the batch, after its accounts are locked: it sees the
# locked balances (as changed by the batch's earlier jobs), can read the database, and sees
# the rows the batch's earlier jobs will insert. It returns the operations to apply (only on
# accounts and holds the job declared) or a Rejection that refuses the job. This is how a
# limit is checked, or an amount decided ("take what is available"), in the same database
# transaction as the money movement.
Prepare = Callable[
    [AsyncConnection, Mapping[AccountKey, AccountState], Sequence[RowInserts]],
    Awaitable[Sequence[Operation] | Rejection],
]


@dataclass(frozen=True, slots=True)
class JobResult:
    response: StoredResponse
    replayed: bool
    outcomes: list[Outcome] | None = None  # None when replayed


@dataclass(slots=True)
class Job:
    ops: list[Operation]
    atomic: bool
    claim: Claim | None
    render: Renderer
    future: asyncio.Future[JobResult] = field(repr=False)
    side_writes: SideWrites | None = None
    prepare: Prepare | None = None
    lock_keys: frozenset[AccountKey] = frozenset()
    store_refusals: bool = True


def new_transaction_id() -> str:
    """UUIDv7: unique across processes, and ordered by time."""
    return str(uuid_utils.uuid7())


class Ledger:
    """The only writer of balances and entries."""

    def __init__(
        self,
        db: AsyncEngine,
        *,
        may_go_negative: Callable[[str], bool],
        idempotency_ttl_s: int,
        batch_max: int = 500,
        committers: int = 1,
        retry_s: float = 20.0,
    ) -> None:
        """``retry_s``: how long a batch whose connection failed is retried (ledger.retry)."""
        self._db = db
        self._retry_s = retry_s
        self._may_go_negative = may_go_negative
        self._ttl = timedelta(seconds=idempotency_ttl_s)
        self._batch_max = batch_max
        self._committer_count = committers
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._inflight: set[tuple[str, str]] = set()
        self._known_accounts = store.KnownAccounts()
        self._tasks: list[asyncio.Task[None]] = []
        self.batches_committed = 0
        self.jobs_committed = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._committer(), name=f"ledger-committer-{i}")
            for i in range(self._committer_count)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(ServiceUnavailable("the server is shutting down"))

    async def submit(
        self,
        ops: Sequence[Operation],
        *,
        render: Renderer,
        claim: Claim | None = None,
        atomic: bool = False,
        side_writes: SideWrites | None = None,
        store_refusals: bool = True,
        prepare: Prepare | None = None,
        lock_keys: frozenset[AccountKey] = frozenset(),
    ) -> JobResult:
        """Apply ``ops`` (in one batch with whatever else is waiting) and return the answer.

        ``store_refusals=False``: a refused job does not consume its idempotency claim, for
        operations that may succeed later (a reversal once the money is back).
        With ``prepare``, ``ops`` declare what to lock (``lock_keys``: extra accounts) and
        ``prepare`` decides, under those locks, what is actually applied."""
        if not self._tasks:
            raise ServiceUnavailable("the ledger is not running")
        if claim is not None and claim.ident in self._inflight:
            raise IdempotencyKeyInUse(
                "a request with this idempotency key is still being processed")
        future: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
        if claim is not None:
            ident = claim.ident
            self._inflight.add(ident)
            # Released when the job is answered, not when the caller goes away.
            future.add_done_callback(lambda _f: self._inflight.discard(ident))
        self._queue.put_nowait(
            Job(list(ops), atomic, claim, render, future, side_writes, prepare=prepare,
                lock_keys=lock_keys, store_refusals=store_refusals))
        # Shield: a client that disconnects must not cancel a job a retry may replay.
        return await asyncio.shield(future)

    async def _committer(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            while len(jobs) < self._batch_max and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            try:
                await self._run(jobs)
            except asyncio.CancelledError:  # stopped, perhaps while retrying: answer them
                for job in jobs:
                    _settle(job, ServiceUnavailable("the server is shutting down; retry with "
                                                    "the same idempotency key"))
                raise
            except Exception:  # pragma: no cover - _run answers every job itself
                log.exception("committer failed")

    async def _run(self, jobs: list[Job]) -> None:
        attempt = retry.Attempt()
        try:
            try:
                answers = await self._commit(jobs, attempt)
            except Exception as exc:
                if not faults.is_transient(exc):
                    raise
                # The connection failed (a failover, a restart): wait and re-run what is safe.
                jobs, answers = await retry.rerun(jobs, attempt, self._commit, exc,
                                                  budget_s=self._retry_s)
        except Exception as exc:
            jobs = [job for job in jobs if not job.future.done()]  # a retry answered some
            if not jobs:
                return
            if len(jobs) > 1:
                log.warning("batch of %d failed (%r); retrying one by one", len(jobs), exc)
                for job in jobs:
                    await self._run([job])
                return
            log.exception("job failed")
            _settle(jobs[0], ServiceUnavailable("the transaction could not be committed; "
                                                "retry with the same idempotency key"))
            return
        if not jobs:  # a retry gave up and answered them
            return
        self.batches_committed += 1
        self.jobs_committed += len(jobs)
        for job, answer in zip(jobs, answers, strict=True):
            _settle(job, answer)

    async def _commit(self, jobs: list[Job],
                      attempt: retry.Attempt) -> list[JobResult | CoinpurseError]:
        """One database transaction for the whole batch; answers are sent after commit."""
        now = datetime.now(UTC)
        answers: list[JobResult | CoinpurseError | None] = [None] * len(jobs)
        async with self._db.begin() as conn:
            claims = [j.claim for j in jobs if j.claim is not None]
            busy = await idempotency.try_lock(conn, claims)
            existing = await idempotency.find(conn, claims)
            live: list[int] = []
            for i, job in enumerate(jobs):
                c = job.claim
                if c is not None and c.ident in busy:
                    answers[i] = IdempotencyKeyInUse(
                        "a request with this idempotency key is still being processed")
                elif c is not None and c.ident in existing:
                    found = existing[c.ident]
                    if found.request_hash == c.request_hash:
                        answers[i] = JobResult(found.response, replayed=True)
                    else:
                        answers[i] = IdempotencyKeyReused(
                            "this idempotency key was used with a different request")
                else:
                    live.append(i)

            held = await store.lock_holds(conn, (
                op.hold_id for i in live for op in jobs[i].ops
                if isinstance(op, CaptureHold | ReleaseHold)
            ))
            keys: set[AccountKey] = set()
            for i in live:
                keys |= jobs[i].lock_keys
                for op in jobs[i].ops:
                    keys |= _account_keys(op, held)
            states = await store.lock_accounts(
                conn, keys, may_go_negative=self._may_go_negative, now=now,
                known=self._known_accounts,
            )
            posted: list[Transaction] = []
            changed_holds: dict[str, HoldState] = {}
            hold_keys: dict[str, str | None] = {}
            done: list[tuple[Claim, StoredResponse]] = []
            extra: list[RowInserts] = []
            statements: list[SqlWrite] = []
            for i in live:
                job = jobs[i]
                idem_key = job.claim.key if job.claim else None
                ops: Sequence[Operation] | Rejection = job.ops
                if job.prepare is not None:
                    ops = await job.prepare(conn, states, tuple(extra))
                if isinstance(ops, Rejection):
                    outcomes: list[Outcome] = [ops]
                    outcomes += [Rejection("batch_atomic_failed", f"not applied ({ops.code})")
                                 for _ in job.ops[1:]]
                else:
                    _assert_declared(ops, job, states, held)
                    outcomes = ledger_engine.apply_group(
                        ops, states, atomic=job.atomic, new_id=new_transaction_id, now=now,
                        idempotency_key=idem_key, holds=held,
                    )
                for o in outcomes:
                    if isinstance(o, Transaction):
                        posted.append(o)
                    elif isinstance(o, HoldOutcome):
                        changed_holds[o.hold.id] = held[o.hold.id]
                        hold_keys.setdefault(o.hold.id, idem_key)
                        if o.transaction is not None:
                            posted.append(o.transaction)
                response = job.render(outcomes)
                if job.side_writes is not None:
                    for write in job.side_writes(outcomes):
                        if isinstance(write, tuple):
                            extra.append(write)
                        else:
                            statements.append(write)
                refused = any(isinstance(o, Rejection) for o in outcomes)
                if job.claim is not None and (job.store_refusals or not refused):
                    done.append((job.claim, response))
                answers[i] = JobResult(response, replayed=False, outcomes=outcomes)

            await store.write_batch(conn, states.values(), posted, now=now)
            await store.write_holds(conn, changed_holds.values(),
                                    {k: st.id for k, st in states.items()}, hold_keys)
            for table, rows in extra:
                if rows:
                    await conn.execute(table.insert(), rows)
            for statement in statements:
                await statement(conn)
            await idempotency.store(conn, done, now=now, expires_at=now + self._ttl)
            attempt.commit_sent = True  # from here on, a lost connection leaves it unknown
        self._known_accounts.add(states)  # committed: every batch can see them now
        assert all(a is not None for a in answers)
        return [a for a in answers if a is not None]


def _account_keys(op: Operation, held: dict[str, HoldState]) -> set[AccountKey]:
    if isinstance(op, TransactionSpec):
        return op.account_keys()
    if isinstance(op, PlaceHold):
        return {(op.address, op.currency)}
    hold = held.get(op.hold_id)
    if hold is None:
        return set()
    keys = {(hold.address, hold.currency)}
    if isinstance(op, CaptureHold):
        keys.add((hold.destination, hold.currency))
    return keys


def _assert_declared(ops: Sequence[Operation], job: Job,
                     states: Mapping[AccountKey, AccountState],
                     held: Mapping[str, HoldState]) -> None:
    """A prepared job may only touch what it declared, which the batch has locked."""
    if job.prepare is None:
        return
    for op in ops:
        assert _account_keys(op, dict(held)) <= states.keys(), op
        if isinstance(op, CaptureHold | ReleaseHold):
            assert any(isinstance(d, CaptureHold | ReleaseHold) and d.hold_id == op.hold_id
                       for d in job.ops), op


def _settle(job: Job, answer: JobResult | CoinpurseError) -> None:
    if job.future.done():
        return
    if isinstance(answer, JobResult):
        job.future.set_result(answer)
    else:
        job.future.set_exception(answer)
