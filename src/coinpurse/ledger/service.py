"""The write path: group commit of concurrent requests into one database transaction.

Requests become jobs on a bounded queue. A committer task takes every job waiting (up to
``batch_max``), applies them in one database transaction and answers each. There is no timer:
while one batch commits the next one gathers, so an idle process answers at once and a busy
one batches more. A refused transaction fails only its own job; a database error on a batch
re-runs its jobs one by one so that one bad job cannot fail its neighbours; a batch
whose connection failed (a failover, a restart) is re-run whole for up to ``retry_s``, where
its idempotency keys make that safe (``ledger.retry``). When the queue is
full a request is refused at once (503 ``overloaded``) rather than left waiting.

Hooks (``LedgerHook``) see every batch: ``write`` inside its database transaction (rows that
must commit with the money movement, such as outbox events), ``committed`` once it has
committed (live notifications, metrics). This is the one seam later features attach to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.clock import utcnow
from coinpurse.core.cluster import faults
from coinpurse.core.db import is_postgres
from coinpurse.core.errors import CoinpurseError, Overloaded, ServiceUnavailable
from coinpurse.core.ids import new_id
from coinpurse.ledger import engine as ledger_engine
from coinpurse.ledger import idempotency, retry, store
from coinpurse.ledger.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from coinpurse.ledger.idempotency import Claim, Existing, StoredResponse
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
# audit entries...) and, rarely, statements to run.
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


@dataclass(frozen=True, slots=True)
class CommittedBatch:
    """What one batch did, for hooks: the transactions it posted and every hold operation
    (placed, captured, voided, expired: each with its account's balance after), in order."""

    transactions: tuple[Transaction, ...]
    holds: tuple[HoldOutcome, ...]
    at: datetime


class LedgerHook(Protocol):
    async def write(self, conn: AsyncConnection, batch: CommittedBatch) -> None:
        """Inside the batch's transaction, after its money movements are written."""

    def committed(self, batch: CommittedBatch) -> None:
        """Once the batch has committed; must not block (schedule work instead)."""


_Committed = tuple[list[JobResult | CoinpurseError], CommittedBatch]


@dataclass(slots=True)
class _Batch:
    """What the jobs of one batch decided, accumulated while they are applied in order."""

    now: datetime
    states: dict[AccountKey, AccountState]
    held: dict[str, HoldState]
    posted: list[Transaction] = field(default_factory=list)
    changed_holds: dict[str, HoldState] = field(default_factory=dict)
    hold_outcomes: list[HoldOutcome] = field(default_factory=list)
    hold_keys: dict[str, str | None] = field(default_factory=dict)
    done: list[tuple[Claim, StoredResponse]] = field(default_factory=list)
    inserts: list[RowInserts] = field(default_factory=list)
    statements: list[SqlWrite] = field(default_factory=list)

    def record(self, outcomes: list[Outcome], idem_key: str | None) -> None:
        for o in outcomes:
            if isinstance(o, Transaction):
                self.posted.append(o)
            elif isinstance(o, HoldOutcome):
                self.changed_holds[o.hold.id] = self.held[o.hold.id]
                self.hold_outcomes.append(o)
                self.hold_keys.setdefault(o.hold.id, idem_key)
                if o.transaction is not None:
                    self.posted.append(o.transaction)

    def add_side_writes(self, writes: list[RowInserts | SqlWrite]) -> None:
        for write in writes:
            if isinstance(write, tuple):
                self.inserts.append(write)
            else:
                self.statements.append(write)


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
        queue_max: int = 10_000,
        retry_s: float = 20.0,
    ) -> None:
        """``retry_s``: how long a batch whose connection failed is retried (ledger.retry)."""
        self._db = db
        self._retry_s = retry_s
        self._may_go_negative = may_go_negative
        self._ttl = timedelta(seconds=idempotency_ttl_s)
        self._batch_max = batch_max
        self._committer_count = committers
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=queue_max)
        self._inflight: set[tuple[str, str]] = set()
        self._known_accounts = store.KnownAccounts()
        self._tasks: list[asyncio.Task[None]] = []
        self._hooks: list[LedgerHook] = []
        self.batches_committed = 0
        self.jobs_committed = 0

    def add_hook(self, hook: LedgerHook) -> None:
        self._hooks.append(hook)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._committer(), name=f"ledger-committer-{i}")
            for i in range(self._committer_count)
        ]

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every job queued so far is committed and answered (at shutdown, once
        no new requests arrive); False if that took longer than ``timeout_s``."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            log.warning("%d ledger jobs still queued after %s s", self._queue.qsize(),
                        timeout_s)
            return False
        return True

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
        if self._queue.full():
            raise Overloaded(f"{self._queue.maxsize} requests are already waiting; retry "
                             "shortly with the same idempotency key")
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
            finally:
                for _ in jobs:
                    self._queue.task_done()

    async def _run(self, jobs: list[Job]) -> None:
        try:
            jobs, done = await self._commit_or_retry(jobs)
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
        if done is None:  # a retry gave up and answered them
            return
        answers, committed = done
        self.batches_committed += 1
        self.jobs_committed += len(jobs)
        self._notify(committed)
        for job, answer in zip(jobs, answers, strict=True):
            _settle(job, answer)

    def _notify(self, batch: CommittedBatch) -> None:
        for hook in self._hooks:
            try:
                hook.committed(batch)
            except Exception:  # a listener's bug must not fail answered money movements
                log.exception("after-commit hook %r failed", hook)

    async def _commit_or_retry(self, jobs: list[Job]) -> tuple[list[Job], _Committed | None]:
        """Commit the batch; if its connection failed, re-run what is safe (ledger.retry)
        and return the jobs that finally committed (the others are answered)."""
        try:
            return jobs, await self._commit(jobs)
        except Exception as exc:
            if not faults.is_transient(exc):
                raise
            return await retry.rerun(jobs, self._commit, exc, budget_s=self._retry_s)

    async def _commit(self, jobs: list[Job]) -> _Committed:
        """One database transaction for the whole batch; answers are sent after commit.
        A fault once COMMIT is on its way raises ``retry.CommitUnknown``."""
        try:
            return await self._commit_once(jobs, long_way=False)
        except _NewAccounts:  # rolled back before it wrote anything
            return await self._commit_once(jobs, long_way=True)

    async def _commit_once(self, jobs: list[Job], *, long_way: bool) -> _Committed:
        now = utcnow()
        committing = False
        try:
            async with self._db.begin() as conn:
                answers, live, batch = await self._claim_and_lock(conn, jobs, now, long_way)
                for i in live:
                    answers[i] = await self._apply(conn, jobs[i], batch)
                committed = await self._write(conn, batch)
                committing = True  # from here on, a lost connection leaves it unknown
        except Exception as exc:
            if committing:
                raise retry.CommitUnknown(exc) from exc
            raise
        self._known_accounts.add(batch.states)  # committed: every batch can see them now
        assert all(a is not None for a in answers)
        return [a for a in answers if a is not None], committed

    async def _claim_and_lock(
        self, conn: AsyncConnection, jobs: list[Job], now: datetime, long_way: bool = False,
    ) -> tuple[list[JobResult | CoinpurseError | None], list[int], _Batch]:
        """The idempotency keys' advisory locks, their stored answers, then the row locks.

        On PostgreSQL a batch with no capture or release (no hold to lock before its
        accounts) does all three in one statement (store.find_and_lock): the accounts of
        the jobs that turn out to be replays are locked too, which costs nothing but a few
        rows. If an account it needs does not exist yet, the batch rolls back and takes the
        long way (``long_way``), which creates accounts before it locks any: creating one
        while holding locks could wait, out of the lock order, on another batch creating
        it too. Whether an account exists is the database's answer, not this process's
        memory (KnownAccounts): in a large app a process has not seen most wallets."""
        claims = [j.claim for j in jobs if j.claim is not None]
        keys: set[AccountKey] = set()
        holds_too = False
        for job in jobs:
            keys |= job.lock_keys
            for op in job.ops:
                holds_too = holds_too or isinstance(op, CaptureHold | ReleaseHold)
                keys |= _account_keys(op, {})
        # A batch that must create accounts takes the long way too: there, only the jobs
        # that turn out to be live create theirs (a refused reused key creates nothing).
        if not is_postgres(conn) or holds_too or long_way:
            busy = await idempotency.try_lock(conn, claims)
            existing = await idempotency.find(conn, claims)
            answers, live = _decide_claims(jobs, busy, existing)
            return answers, live, await self._lock(conn, [jobs[i] for i in live], now)
        busy, existing, states = await store.find_and_lock(conn, claims, keys)
        if len(states) < len(keys):
            raise _NewAccounts
        answers, live = _decide_claims(jobs, busy, existing)
        return answers, live, _Batch(now=now, states=states, held={})

    async def _lock(self, conn: AsyncConnection, jobs: list[Job], now: datetime) -> _Batch:
        """Lock the holds, then the accounts, that the batch's jobs declare (sorted)."""
        held = await store.lock_holds(conn, (
            op.hold_id for job in jobs for op in job.ops
            if isinstance(op, CaptureHold | ReleaseHold)
        ))
        keys: set[AccountKey] = set()
        for job in jobs:
            keys |= job.lock_keys
            for op in job.ops:
                keys |= _account_keys(op, held)
        states = await store.lock_accounts(
            conn, keys, may_go_negative=self._may_go_negative, now=now,
            known=self._known_accounts,
        )
        return _Batch(now=now, states=states, held=held)

    async def _apply(self, conn: AsyncConnection, job: Job, batch: _Batch) -> JobResult:
        """Decide one job in memory, render its answer, and queue its side writes."""
        idem_key = job.claim.key if job.claim else None
        ops: Sequence[Operation] | Rejection = job.ops
        if job.prepare is not None:
            ops = await job.prepare(conn, batch.states, tuple(batch.inserts))
        if isinstance(ops, Rejection):
            outcomes: list[Outcome] = [ops]
            outcomes += [Rejection("batch_atomic_failed", f"not applied ({ops.code})")
                         for _ in job.ops[1:]]
        else:
            _assert_declared(ops, job, batch.states, batch.held)
            outcomes = ledger_engine.apply_group(
                ops, batch.states, atomic=job.atomic, new_id=new_id, now=batch.now,
                idempotency_key=idem_key, holds=batch.held,
            )
        batch.record(outcomes, idem_key)
        response = job.render(outcomes)
        if job.side_writes is not None:
            batch.add_side_writes(job.side_writes(outcomes))
        refused = any(isinstance(o, Rejection) for o in outcomes)
        if job.claim is not None and (job.store_refusals or not refused):
            batch.done.append((job.claim, response))
        return JobResult(response, replayed=False, outcomes=outcomes)

    async def _write(self, conn: AsyncConnection, batch: _Batch) -> CommittedBatch:
        """Write what the batch decided, set-based; the hooks' rows go in the same commit."""
        await store.write_batch(conn, batch.states.values(), batch.posted, now=batch.now,
                                done=batch.done, expires_at=batch.now + self._ttl)
        await store.write_holds(conn, batch.changed_holds.values(),
                                {k: st.id for k, st in batch.states.items()}, batch.hold_keys)
        for table, rows in batch.inserts:
            if rows:
                await conn.execute(table.insert(), rows)
        for statement in batch.statements:
            await statement(conn)
        committed = CommittedBatch(tuple(batch.posted), tuple(batch.hold_outcomes), batch.now)
        for hook in self._hooks:
            await hook.write(conn, committed)
        return committed


def _decide_claims(
    jobs: list[Job], busy: set[tuple[str, str]], existing: Mapping[tuple[str, str], Existing],
) -> tuple[list[JobResult | CoinpurseError | None], list[int]]:
    """Replays, refusals of reused or busy keys, and the jobs still to apply."""
    answers: list[JobResult | CoinpurseError | None] = [None] * len(jobs)
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
    return answers, live


def _account_keys(op: Operation, held: Mapping[str, HoldState]) -> set[AccountKey]:
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
        assert _account_keys(op, held) <= states.keys(), op
        if isinstance(op, CaptureHold | ReleaseHold):
            assert any(isinstance(d, CaptureHold | ReleaseHold) and d.hold_id == op.hold_id
                       for d in job.ops), op


class _NewAccounts(Exception):
    """The batch needs an account that does not exist yet: it starts again the long way."""


def _settle(job: Job, answer: JobResult | CoinpurseError) -> None:
    if job.future.done():
        return
    if isinstance(answer, JobResult):
        job.future.set_result(answer)
    else:
        job.future.set_exception(answer)
