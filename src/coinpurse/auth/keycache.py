"""An in-process cache of valid service keys, so a request does not read its key each time.

The cache is only used while this process is sure to hear of every key change:

* PostgreSQL: it listens on the channel that every key change is announced on (``pg_notify``
  in the changing transaction, delivered at commit), from any process or the CLI. If the
  listening connection drops, the cache switches itself off until it is back.
* SQLite (one server process): whoever changes a key touches a file beside the database
  after committing (``announce_committed``); each lookup compares that file's modification
  time, a ``stat`` call, with the one the cache was filled under.

A lookup that raced a change must not put the old answer back: entries are only stored if
no change was heard between the database read and the store (a generation counter).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from coinpurse.auth.keys import CHANGES_CHANNEL, ServiceKey
from coinpurse.core.cluster.urls import DbOptions, connect_kwargs

log = logging.getLogger("coinpurse.keycache")
ENTRIES_MAX = 10_000
RECONNECT_S = 5.0


def sidecar_path(database_url: str) -> Path | None:
    """The file whose modification time stands for 'a key changed' on SQLite."""
    if not database_url.startswith("sqlite"):
        return None
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(f"{url.database}-keys-changed")


def announce_committed(database_url: str) -> None:
    """Call after committing a key change on SQLite (PostgreSQL announces by itself)."""
    path = sidecar_path(database_url)
    if path is not None:
        path.write_text(str(time.time_ns()))


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0


class KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, ServiceKey] = {}
        self._listening = False
        self._sidecar: Path | None = None
        self._stamp = 0
        self._generation = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._listening or self._sidecar is not None

    def generation(self) -> int:
        """Read before the database lookup; hand back to ``put``."""
        self._check_sidecar()
        return self._generation

    def get(self, key_hash: str) -> ServiceKey | None:
        if not self.active:
            return None
        self._check_sidecar()
        key = self._entries.get(key_hash)
        if key is not None and key.expires_at is not None and key.expires_at <= datetime.now(UTC):
            self._entries.pop(key_hash, None)
            return None
        return key

    def put(self, key_hash: str, key: ServiceKey, generation: int) -> None:
        if not self.active or generation != self.generation():
            return  # a change was heard since the lookup began: its answer may be stale
        if len(self._entries) >= ENTRIES_MAX:
            self._entries.clear()
        self._entries[key_hash] = key

    def clear(self, *_: Any) -> None:
        self._generation += 1
        self._entries.clear()

    def _check_sidecar(self) -> None:
        if self._sidecar is not None:
            stamp = _mtime(self._sidecar)
            if stamp != self._stamp:
                self._stamp = stamp
                self.clear()

    def start(self, database_url: str, options: DbOptions | None = None) -> None:
        """``database_url``: one where LISTEN works, i.e. not through a transaction pooler
        (``Settings.direct_db``). Behind one, with no direct URL, the cache stays off and
        every request reads its key: correct, one query dearer."""
        options = options or DbOptions()
        if database_url.startswith("postgres") and options.pooling == "transaction":
            log.info("key cache off: LISTEN needs a session; set COINPURSE_DIRECT_DATABASE_URL "
                     "to a URL that bypasses the transaction pooler to turn it on")
        elif database_url.startswith("postgres"):
            self._task = asyncio.create_task(self._listen(database_url, options),
                                             name="key-cache")
        else:
            self._sidecar = sidecar_path(database_url)
            if self._sidecar is not None:
                self._stamp = _mtime(self._sidecar)

    async def stop(self) -> None:
        self._listening = False
        self._sidecar = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self, database_url: str, options: DbOptions) -> None:
        # A multi-host URL finds the primary again after a failover (target_session_attrs).
        kwargs = connect_kwargs(database_url, options)
        while True:
            conn = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(**kwargs)
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
