"""Live updates for users (SSE and WebSocket): one pump per process follows the event log
and fans out to that process's subscribers.

* The pump reads the log like any reader (``repository.read``, the same horizon, so it never
  skips an event that commits late) and turns ``transaction.posted`` and ``hold.*`` into
  ``balance.updated`` messages for the users whose wallets changed, and
  ``notification.created`` into ``notification.created`` for its user.
* It wakes when this process commits events (``Wakeup``), when another one does (``Bus``:
  PostgreSQL ``LISTEN`` on the channel the outbox notifies in each writing transaction,
  or Redis pub/sub with ``COINPURSE_REDIS_URL``), and every ``COINPURSE_LIVE_POLL_S``.
* Bounded: streams per user and per process are capped, each subscriber has a bounded
  queue, and a subscriber that falls behind is dropped (its stream ends; it reconnects with
  ``Last-Event-ID``). A resume scans at most ``COINPURSE_LIVE_RESUME_MAX`` events after
  ``Last-Event-ID``; past that the client gets ``reset`` and reloads its balances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.core.cluster.urls import DbOptions, connect_kwargs
from coinpurse.events import repository
from coinpurse.events.errors import TooManyStreams
from coinpurse.events.repository import CHANNEL, StoredEvent
from coinpurse.events.service import Wakeup
from coinpurse.events.settings import EventSettings

log = logging.getLogger("coinpurse.live")
LIVE_TYPES = ("transaction.posted", "notification.created")
LIVE_PREFIXES = ("hold.",)
PAGE = 500
RECONNECT_S = 2.0
REDIS_CHANNEL = "coinpurse:events"


@dataclass(frozen=True, slots=True)
class Message:
    id: int  # the log event it comes from: the client's Last-Event-ID
    event: str  # balance.updated, notification.created, reset
    data: dict[str, Any]


def wallet_of(address: str) -> tuple[str, str] | None:
    """(user id, wallet name) of a user's account: ``user:7`` is 7's ``main`` wallet,
    ``user:7:bonus`` its ``bonus`` sub-wallet; None for any other address."""
    parts = address.split(":")
    if parts[0] != "user" or len(parts) not in (2, 3):
        return None
    return parts[1], (parts[2] if len(parts) == 3 else "main")


def _balance(event: StoredEvent, b: dict[str, Any], **more: Any) -> Iterator[tuple[str,
                                                                                   Message]]:
    owner = wallet_of(str(b["address"]))
    if owner is not None:
        yield owner[0], Message(event.id, "balance.updated", {
            "wallet": owner[1], "address": b["address"], "currency": b["currency"],
            "balance": b["balance"], "held": b["held"], "available": b["available"],
            "version": b["version"], **more})


def messages(event: StoredEvent) -> list[tuple[str, Message]]:
    """(user id, message) for each user an event concerns."""
    data = event.data
    if event.type == "transaction.posted":
        return [m for b in data.get("balances", ())
                for m in _balance(event, b, transaction_id=data["id"], hold_id=None)]
    if event.type.startswith("hold."):
        hold = data["hold"]
        return list(_balance(event, data["balance"], transaction_id=hold["transaction_id"],
                             hold_id=hold["id"]))
    if event.type == "notification.created":
        return [(str(data["user_id"]), Message(event.id, "notification.created", data))]
    return []


@dataclass(eq=False)
class Subscriber:
    user_id: str
    after: int  # messages up to this id are not for it (it has them, or skipped them)
    queue: asyncio.Queue[Message]
    backlog: list[Message] = field(default_factory=list)  # the resume, sent first
    dropped: bool = False

    def offer(self, message: Message) -> bool:
        """Queue a message; False (and dropped) if the queue is full."""
        if message.id <= self.after:
            return True
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped = True
            return False
        return True

    async def next(self, timeout_s: float) -> Message | None:
        """The next message, or None after ``timeout_s`` (time for a heartbeat)."""
        if self.backlog:
            return self.backlog.pop(0)
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None


class Hub:
    """This process's subscribers and the pump that feeds them."""

    def __init__(self, db: AsyncEngine, settings: EventSettings, wakeup: Wakeup) -> None:
        self.db = db
        self.settings = settings
        self.wakeup = wakeup
        self.position: int | None = None  # the last log id dispatched
        self._users: dict[str, set[Subscriber]] = {}
        self._count = 0
        self._lock = asyncio.Lock()  # one read-and-dispatch at a time
        self.dropped = 0

    @property
    def count(self) -> int:
        return self._count

    async def subscribe(self, user_id: str, last_event_id: int | None) -> Subscriber:
        if self._count >= self.settings.live_streams_max:
            raise TooManyStreams(f"this server has {self._count} live streams open")
        if len(self._users.get(user_id, ())) >= self.settings.live_streams_per_user:
            raise TooManyStreams(f"at most {self.settings.live_streams_per_user} live "
                                 "streams per user; close one")
        async with self._lock:
            if self.position is None or self._count == 0:
                async with self.db.connect() as conn:  # idle until now: start at the head
                    self.position = await repository.head(conn)
            position = self.position
            sub = Subscriber(user_id, last_event_id if last_event_id is not None
                             else position, asyncio.Queue(self.settings.live_queue_max))
            self._users.setdefault(user_id, set()).add(sub)
            self._count += 1
        if last_event_id is not None and last_event_id < position:
            try:
                sub.backlog = await self._resume(user_id, last_event_id, position)
            except BaseException:
                self.unsubscribe(sub)
                raise
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._users.get(sub.user_id)
        if subs is not None and sub in subs:
            subs.discard(sub)
            self._count -= 1
            if not subs:
                del self._users[sub.user_id]

    async def _resume(self, user_id: str, after: int, upto: int) -> list[Message]:
        """The user's messages after ``after`` up to the pump's position, scanning at most
        ``live_resume_max`` events; past that, one ``reset`` (reload your balances)."""
        limit = self.settings.live_resume_max
        async with self.db.connect() as conn:
            found = await repository.read(conn, after=after, limit=limit + 1,
                                          types=LIVE_TYPES, prefixes=LIVE_PREFIXES, upto=upto)
        if len(found) > limit:
            return [Message(upto, "reset", {"reason": "resume_window_exceeded",
                                            "detail": "reload the balances and "
                                            "notifications; live updates go on from here"})]
        return [m for e in found for uid, m in messages(e) if uid == user_id]

    def dispatch(self, found: list[StoredEvent]) -> None:
        for event in found:
            for user_id, message in messages(event):
                for sub in list(self._users.get(user_id, ())):
                    if not sub.offer(message):
                        self.dropped += 1
                        self.unsubscribe(sub)  # its stream sees ``dropped`` and ends

    async def pump_once(self) -> int:
        """Read what is new and dispatch it; returns how many events were read."""
        total = 0
        async with self._lock:
            if self._count == 0 or self.position is None:
                return 0
            while True:
                async with self.db.connect() as conn:
                    head = await repository.head(conn)
                    found = await repository.read(
                        conn, after=self.position, limit=PAGE, types=LIVE_TYPES,
                        prefixes=LIVE_PREFIXES, upto=head)
                self.dispatch(found)
                total += len(found)
                self.position = found[-1].id if len(found) == PAGE else max(head,
                                                                            self.position)
                if len(found) < PAGE:
                    return total

    async def run(self) -> None:
        """The pump: forever, while the process runs (a job)."""
        while True:
            seen = self.wakeup.generation
            await self.pump_once()
            await self.wakeup.wait(self.settings.live_poll_s, since=seen)


class Bus:
    """Hears that other processes committed events, and wakes this one's readers:
    ``LISTEN`` on PostgreSQL, or Redis pub/sub (then this process also publishes its own
    commits there). SQLite has one process: nothing to hear."""

    def __init__(self, database_url: str, settings: EventSettings, wakeup: Wakeup,
                 options: DbOptions | None = None) -> None:
        """``database_url``, ``options``: ``Settings.direct_db``, where LISTEN works (not
        through a transaction pooler: there, with no direct URL, readers only poll)."""
        self.database_url = database_url
        self.options = options or DbOptions()
        self.redis_url = settings.redis_url
        self.wakeup = wakeup
        self._publisher: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = False
        if self.redis_url:
            wakeup.on_ring(self._publish_soon)

    @property
    def needed(self) -> bool:
        return bool(self.redis_url) or self._listens

    @property
    def _listens(self) -> bool:
        return (self.database_url.startswith("postgres")
                and self.options.pooling != "transaction")

    async def run(self) -> None:
        """Listen forever, reconnecting (a job)."""
        if self.redis_url:
            await self._listen_redis()
        elif self._listens:
            await self._listen_pg()

    async def _listen_pg(self) -> None:
        # A multi-host URL finds the primary again after a failover (target_session_attrs).
        kwargs = connect_kwargs(self.database_url, self.options)
        while True:
            conn = None
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(**kwargs)
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(CHANNEL, lambda *_a: self.wakeup.wake())
                self.wakeup.wake()  # whatever committed while nobody listened
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cannot listen for events (%s); polling until it is back", exc)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close()
            await asyncio.sleep(RECONNECT_S)

    async def _listen_redis(self) -> None:
        import redis.asyncio as aioredis

        while True:
            client = aioredis.from_url(str(self.redis_url))
            try:
                self._publisher = client
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(REDIS_CHANNEL)
                    self.wakeup.wake()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.wakeup.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cannot listen on Redis (%s); polling until it is back", exc)
            finally:
                self._publisher = None
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(RECONNECT_S)

    def _publish_soon(self) -> None:
        """After this process committed events: one publish at a time, coalesced."""
        if self._publisher is None or self._pending:
            return
        self._pending = True
        task = asyncio.get_running_loop().create_task(self._publish())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self) -> None:
        await asyncio.sleep(0)  # coalesce the rings of this loop iteration
        self._pending = False
        client = self._publisher
        if client is None:
            return
        try:
            await client.publish(REDIS_CHANNEL, "1")
        except Exception as exc:  # the poll still delivers, a little later
            log.warning("cannot publish to Redis: %s", exc)
