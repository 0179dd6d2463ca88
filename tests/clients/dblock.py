"""Hold the ledger's write lock from outside the server, so a request stays in flight.

``python -m tests.clients.dblock <database url>`` takes the lock, prints ``locked``, and
releases it when its standard input closes (or a line arrives). A money-moving request sent
meanwhile waits inside the server with its idempotency key claimed, and a second request with
the same key gets a genuine 409 ``idempotency_key_in_use``. Used by the Python and the
TypeScript client tests alike.

PostgreSQL: ``LOCK TABLE accounts IN EXCLUSIVE MODE`` (blocks the ledger's account inserts and
``SELECT ... FOR UPDATE``, not plain reads). SQLite: ``BEGIN IMMEDIATE`` (the single writer lock;
the server waits on its busy timeout).
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parents[2]


async def _hold_postgres(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("LOCK TABLE accounts IN EXCLUSIVE MODE")
        print("locked", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await tx.rollback()
    finally:
        await conn.close()


def _hold_sqlite(url: str) -> None:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        sys.stdin.readline()
        conn.execute("ROLLBACK")
    finally:
        conn.close()


class DbLock:
    """The lock, held by a child process until ``release()``."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.clients.dblock", url], cwd=REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "locked":
            self.proc.kill()
            raise RuntimeError(f"could not take the database lock: {line!r}")

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(10)
        assert self.proc.returncode == 0, f"the lock holder failed ({self.proc.returncode})"


if __name__ == "__main__":
    target = sys.argv[1]
    if target.startswith("sqlite:///"):
        _hold_sqlite(target)
    else:
        asyncio.run(_hold_postgres(target))
