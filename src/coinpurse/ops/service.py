"""Readiness (may this process get traffic?) and the gauges sampled between scrapes."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.core import metrics
from coinpurse.core.db import head_revision
from coinpurse.core.jobs import JobStatus
from coinpurse.ledger.service import Ledger
from coinpurse.ops import repository
from coinpurse.payments import service as payments

DB_TIMEOUT_S = 2.0
OK = "ok"


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: dict[str, str]  # name -> "ok" or what is wrong

    @property
    def ok(self) -> bool:
        return all(v == OK for v in self.checks.values())

    @property
    def reasons(self) -> list[str]:
        return [f"{k}: {v}" for k, v in self.checks.items() if v != OK]


@functools.cache
def _head() -> str:
    return head_revision()


async def readiness(db: AsyncEngine, jobs: dict[str, JobStatus], *,
                    draining: bool) -> Readiness:
    """The database answers and is at this code's migration, every background job of this
    process is running, and the process is not shutting down."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(DB_TIMEOUT_S):
            current = await repository.current_revision(db)
        checks["database"] = OK
        head = _head()
        checks["migrations"] = OK if current == head else (
            f"the database is at {current or 'no migration'}, this code needs {head}: "
            "run coinpurse migrate")
    except TimeoutError:
        checks["database"] = f"no answer within {DB_TIMEOUT_S:g} s"
    except Exception as exc:  # the reason, in one line, for the operator
        checks["database"] = f"unreachable: {type(exc).__name__}"
    stopped = sorted(name for name, status in jobs.items() if not status.alive)
    checks["jobs"] = OK if not stopped else "not running: " + ", ".join(stopped)
    checks["shutdown"] = "draining: shutting down" if draining else OK
    return Readiness(checks)


def sample_process(db: AsyncEngine, ledger: Ledger, standby: AsyncEngine | None = None,
                   ledger_db: AsyncEngine | None = None) -> None:
    """This process's live gauges: the ledger's queue and the connection pools (the primary's,
    the ledger committers' own and, with COINPURSE_READ_DATABASE_URL, the standby's, added
    up)."""
    metrics.LEDGER_QUEUE_DEPTH.set(ledger.queue_depth)
    in_use = size = 0
    for engine in (db, ledger_db, standby):
        pool = engine.pool if engine is not None else None
        checked_out = getattr(pool, "checkedout", None)
        pool_size = getattr(pool, "size", None)
        if callable(checked_out) and callable(pool_size):
            in_use += checked_out()
            size += pool_size()
    metrics.DB_POOL_IN_USE.set(in_use)
    metrics.DB_POOL_SIZE.set(size)


async def sample(db: AsyncEngine, ledger: Ledger, standby: AsyncEngine | None = None,
                 ledger_db: AsyncEngine | None = None) -> None:
    """One pass of the sampler job: the process gauges and the webhook inbox."""
    sample_process(db, ledger, standby, ledger_db)
    backlog, age_s = await payments.inbox_backlog(db)
    metrics.INBOX_BACKLOG.set(backlog)
    metrics.INBOX_OLDEST_AGE.set(age_s)
