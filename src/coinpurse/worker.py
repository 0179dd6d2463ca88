"""``coinpurse worker``: every domain's background jobs, without serving HTTP."""

from __future__ import annotations

import asyncio
import signal

from coinpurse.app import background_jobs, tune_gc_of
from coinpurse.config import Settings
from coinpurse.core import logging as coinpurse_logging
from coinpurse.core.jobs import JobRunner
from coinpurse.ops.hooks import LedgerMetrics
from coinpurse.state import close_state, open_state

log = coinpurse_logging.get_logger("coinpurse.worker")


async def run_worker(settings: Settings) -> None:
    state = await open_state(settings, committers=1)
    state.ledger.add_hook(LedgerMetrics(state.ledger))
    runner = JobRunner(background_jobs(state))
    runner.start()
    tune_gc_of(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started", jobs=sorted(runner.status))
    try:
        await stop.wait()
    finally:
        log.info("worker stopping")
        await runner.stop()
        await close_state(state, drain_s=settings.shutdown_timeout_s)
        coinpurse_logging.flush()
