"""An in-process cache of valid service keys, so a request does not read its key each time.

Only on PostgreSQL, and only while this process listens on the channel that every key change
is announced on (``pg_notify`` in the changing transaction): a revocation or rotation, from
any process or the CLI, empties every server's cache when it commits. If the listening
connection drops, the cache switches itself off until it is back. On SQLite keys are always
read from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from coinpurse.auth.keys import CHANGES_CHANNEL, ServiceKey

log = logging.getLogger("coinpurse.keycache")
ENTRIES_MAX = 10_000
RECONNECT_S = 5.0


class KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, ServiceKey] = {}
        self._listening = False
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._listening

    def get(self, key_hash: str) -> ServiceKey | None:
        if not self._listening:
            return None
        key = self._entries.get(key_hash)
        if key is not None and key.expires_at is not None and key.expires_at <= datetime.now(UTC):
            self._entries.pop(key_hash, None)
            return None
        return key

    def put(self, key_hash: str, key: ServiceKey) -> None:
        if not self._listening:
            return
        if len(self._entries) >= ENTRIES_MAX:
            self._entries.clear()
        self._entries[key_hash] = key

    def clear(self, *_: Any) -> None:
        self._entries.clear()

    def start(self, database_url: str) -> None:
        if database_url.startswith("postgres"):
            self._task = asyncio.create_task(self._listen(database_url), name="key-cache")

    async def stop(self) -> None:
        self._listening = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self, database_url: str) -> None:
        dsn = make_url(database_url.replace("postgres://", "postgresql://", 1)).set(
            drivername="postgresql").render_as_string(hide_password=False)
        while True:
            conn = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(dsn)
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(CHANGES_CHANNEL, self.clear)
                self.clear()  # changes made while nobody listened
                self._listening = True
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("key cache off, cannot listen for key changes: %s", exc)
            finally:
                self._listening = False
                self.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(RECONNECT_S)
