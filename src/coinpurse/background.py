"""Background jobs: run inside ``coinpurse serve`` and by ``coinpurse worker``.

Every job is safe to run in several processes at once: each change goes through the ledger,
which locks what it changes, so racing workers only find less to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse import idempotency
from coinpurse.config import Settings
from coinpurse.db import create_engine
from coinpurse.holds.service import expiry_loop
from coinpurse.ledger.service import Ledger
from coinpurse.partitions import maintain_loop

log = logging.getLogger("coinpurse.background")
PURGE_EVERY_S = 600

# Extra jobs registered by other domains (payments inbox, outbox...): (name, factory).
JobFactory = Callable[[AsyncEngine, Ledger], Coroutine[Any, Any, None]]
EXTRA_JOBS: list[tuple[str, JobFactory]] = []


async def purge_all_expired(db: AsyncEngine, now: datetime | None = None) -> int:
    """Purge in bounded chunks, one short transaction each, until none is left."""
    now = now or datetime.now(UTC)
    total = 0
    while True:
        async with db.begin() as conn:
            purged = await idempotency.purge_expired(conn, now)
        total += purged
        if purged == 0:
            return total


async def purge_loop(db: AsyncEngine, _ledger: Ledger) -> None:
    while True:
        try:
            purged = await purge_all_expired(db)
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except Exception:
            log.exception("idempotency purge failed; will retry")
        await asyncio.sleep(PURGE_EVERY_S)


def start_background(db: AsyncEngine, ledger: Ledger,
                     settings: Settings | None = None) -> list[asyncio.Task[None]]:
    jobs: list[tuple[str, JobFactory]] = [
        ("idempotency-purge", purge_loop), ("hold-expiry", expiry_loop),
        ("history-partitions", maintain_loop), *EXTRA_JOBS,
    ]
    tasks = [asyncio.create_task(factory(db, ledger), name=name) for name, factory in jobs]
    if settings is not None:
        # Jobs that need the settings (provider secrets, limits): the payments inbox.
        from coinpurse.payments.inbox import inbox_loop

        tasks.append(asyncio.create_task(inbox_loop(db, ledger, settings),
                                         name="payments-inbox"))
    return tasks


async def stop_background(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_worker(settings: Settings) -> None:
    db = create_engine(settings.database_url, pool_size=settings.db_pool_size,
                       options=settings.db_options)
    ledger = Ledger(db, may_go_negative=settings.may_go_negative,
                    idempotency_ttl_s=settings.idempotency_ttl_s,
                    batch_max=settings.batch_max, committers=1, retry_s=settings.db_retry_s)
    await ledger.start()
    tasks = start_background(db, ledger, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await stop_background(tasks)
        await ledger.stop()
        await db.dispose()
