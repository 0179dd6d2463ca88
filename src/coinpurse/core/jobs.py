"""Background jobs: each domain declares its own (``<domain>/jobs.py``); one runner runs them
inside ``coinpurse serve`` and ``coinpurse worker``.

A job is one pass of work (``step``) repeated every ``every_s`` seconds. A failing pass is
logged and tried again at the next tick; it never stops the job. Each job records when it
last completed a pass, so health checks can tell a stuck or dead job from a quiet one.
Every job must be safe to run in several processes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from coinpurse.core import metrics

log = logging.getLogger("coinpurse.jobs")


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    step: Callable[[], Awaitable[object]]
    every_s: float


@dataclass(slots=True)
class JobStatus:
    name: str
    every_s: float
    passes: int = 0
    failures: int = 0
    last_ok_monotonic: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()


class JobRunner:
    def __init__(self, jobs: Sequence[Job]) -> None:
        names = [j.name for j in jobs]
        assert len(names) == len(set(names)), f"job names must be unique: {names}"
        self._jobs = list(jobs)
        self.status: dict[str, JobStatus] = {j.name: JobStatus(j.name, j.every_s)
                                             for j in jobs}

    def start(self) -> None:
        for job in self._jobs:
            self.status[job.name].task = asyncio.create_task(self._loop(job), name=job.name)

    async def stop(self) -> None:
        tasks = [s.task for s in self.status.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self, name: str) -> object:
        """One pass of a job, now (for tests and the CLI)."""
        job = next(j for j in self._jobs if j.name == name)
        return await job.step()

    async def _loop(self, job: Job) -> None:
        status = self.status[job.name]
        while True:
            try:
                await job.step()
                status.passes += 1
                status.last_ok_monotonic = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:
                status.failures += 1
                metrics.JOB_FAILURES.labels(job.name).inc()
                log.exception("background job %s failed; will retry", job.name)
            await asyncio.sleep(job.every_s)
