"""Hearing that the server was told to stop, before it waits for open connections.

On SIGTERM uvicorn stops accepting, then waits up to ``COINPURSE_SHUTDOWN_TIMEOUT_S`` for
open connections to finish before the app's lifespan ends. A live stream never finishes by
itself, so it would hold every shutdown (and every rolling deploy) for the whole timeout.
Chaining uvicorn's signal handler lets the app act at once: cut its live streams (clients
resume on another process with Last-Event-ID) and answer ``/readyz`` with 503."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _is_uvicorns(handler: Any) -> bool:
    owner = getattr(handler, "__self__", None)
    return owner is not None and type(owner).__module__.startswith("uvicorn")


def on_stop_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` on the event loop when uvicorn receives a stop signal, then let
    uvicorn handle it as usual. Only under uvicorn's own handlers (``coinpurse serve``):
    in-process tests and other servers keep theirs. Returns the undo."""
    loop = asyncio.get_running_loop()
    chained: list[tuple[signal.Signals, Any]] = []
    for sig in STOP_SIGNALS:
        try:
            previous = signal.getsignal(sig)
        except ValueError:  # not the main thread: nothing to chain
            return lambda: None
        if not _is_uvicorns(previous):
            continue

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(callback)
            previous(signum, frame)

        signal.signal(sig, handler)
        chained.append((sig, previous))

    def undo() -> None:
        for sig, previous in chained:
            signal.signal(sig, previous)

    return undo
