"""``coinpurse worker``: every domain's background jobs, without serving HTTP."""

from __future__ import annotations

import asyncio
import signal

from coinpurse.app import background_jobs
from coinpurse.config import Settings
from coinpurse.core.jobs import JobRunner
from coinpurse.state import close_state, open_state


async def run_worker(settings: Settings) -> None:
    state = await open_state(settings, committers=1)
    runner = JobRunner(background_jobs(state))
    runner.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.stop()
        await close_state(state)
