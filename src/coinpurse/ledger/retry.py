"""Retrying a batch whose database connection failed, without ever posting twice.

A batch that failed on a transient fault (``core.cluster.faults``: the connection
dropped, a timeout, a failover under way) either rolled back or, if the connection dropped
while COMMIT was on its way, committed without our hearing of it. Re-running the batch
settles both cases, because its first step looks its idempotency keys up: a job that did
commit finds its stored answer and replays it; a job that did not runs now.

So a job may be re-run after an unknown outcome only if that lookup (or the ledger's own
rules) makes a second application impossible:

* it carries an idempotency claim (every money-moving API call, payments' credits and
  reversals, admin adjustments and reversals, the demo seed); or
* it only closes holds (capture, release, expiry): a hold closes once, and a second attempt
  is refused with ``hold_not_open``. Its caller then reads the hold's state (withdrawals do).

Any other job whose commit may have happened is answered 503 and not re-run. A batch that
failed before COMMIT was sent rolled back for sure, and is re-run whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from coinpurse.core.cluster import faults
from coinpurse.core.errors import ServiceUnavailable
from coinpurse.ledger.model import CaptureHold, ReleaseHold

log = logging.getLogger("coinpurse.ledger")

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 1.0
GAVE_UP = ("the database could not be reached in time; nothing was lost: retry with the "
           "same idempotency key")
UNKNOWN = ("the connection to the database was lost while committing, and this operation "
           "carries no idempotency key to resolve it: check its outcome before retrying")


class RetryJob(Protocol):
    """What the retry needs of a ledger job."""

    @property
    def claim(self) -> object | None: ...

    @property
    def ops(self) -> Sequence[object]: ...

    @property
    def future(self) -> asyncio.Future[Any]: ...


J = TypeVar("J", bound=RetryJob)
R = TypeVar("R")


class CommitUnknown(Exception):
    """The connection failed after COMMIT was sent: the batch may have committed or not.
    Raised from the fault itself, which stays its ``__cause__``."""

    def __init__(self, fault: BaseException) -> None:
        super().__init__(f"commit outcome unknown: {fault!r}")


Commit = Callable[[list[J]], Awaitable[R]]


def rerun_safe(job: RetryJob) -> bool:
    """True if applying ``job`` again can never apply it twice (see the module's doc)."""
    if job.claim is not None:
        return True
    return bool(job.ops) and all(isinstance(op, CaptureHold | ReleaseHold) for op in job.ops)


def _fail(job: RetryJob, detail: str) -> None:
    if not job.future.done():
        job.future.set_exception(ServiceUnavailable(detail))


async def rerun(jobs: list[J], commit: Commit[J, R], fault: Exception,
                *, budget_s: float) -> tuple[list[J], R | None]:
    """Re-run ``jobs`` after ``fault`` until one try commits or ``budget_s`` has passed.

    Returns the jobs that committed and what ``commit`` returned for them (None if none
    did). Jobs it gives up on are answered here (503). A fault that is not transient is
    raised: the caller's own handling applies (the batch is re-run one job at a time)."""
    deadline = time.monotonic() + budget_s
    delay = FIRST_DELAY_S
    while True:
        if isinstance(fault, CommitUnknown):
            for job in jobs:
                if not rerun_safe(job):
                    _fail(job, UNKNOWN)
            jobs = [job for job in jobs if rerun_safe(job)]
        if not jobs:
            return [], None
        if time.monotonic() + delay > deadline:
            log.error("gave up on a batch of %d after %.1f s: %r", len(jobs), budget_s, fault)
            for job in jobs:
                _fail(job, GAVE_UP)
            return [], None
        log.warning("batch of %d failed (%r); retrying in %.2f s", len(jobs), fault, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY_S)
        try:
            return jobs, await commit(jobs)
        except Exception as exc:
            if not faults.is_transient(exc):
                raise
            fault = exc
