"""Live updates over real servers: SSE across two processes (PostgreSQL LISTEN/NOTIFY, and
Redis pub/sub), resume with Last-Event-ID, the WebSocket, caps; the hub's bounds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import websockets

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.events import live, service
from coinpurse.events.repository import StoredEvent
from tests.conftest import Server, auth, user_token
from tests.events.conftest import eventually
from tests.pgserver import free_port

# Pumps poll rarely here, so a fast delivery proves the wake-up (NOTIFY, Redis) works.
SLOW_POLL = {"COINPURSE_LIVE_POLL_S": "20", "COINPURSE_RATE_LIMIT_USER": "off",
             "COINPURSE_RATE_LIMIT_IP": "off"}


class Stream:
    """An SSE client reading in the background: ``events`` as (id, event, data)."""

    def __init__(self, base_url: str, user: str, last_event_id: str | None = None) -> None:
        self.url = base_url + "/api/v1/events/stream"
        self.headers = auth(user_token(user))
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = last_event_id
        self.events: list[tuple[str | None, str, dict[str, Any]]] = []
        self.arrived: list[float] = []
        self.comments: list[str] = []
        self.connected = asyncio.Event()
        self.status: int | None = None
        self.cut = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Stream:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.connected.wait(), 10)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        try:
            await self._follow()
        except httpx.RemoteProtocolError:
            self.cut = True  # the server ended the stream mid-way (a shutdown)
        self.connected.set()

    async def _follow(self) -> None:
        async with httpx.AsyncClient(timeout=None) as client, client.stream(
                "GET", self.url, headers=self.headers) as response:
            self.status = response.status_code
            if response.status_code != 200:
                await response.aread()
                self.connected.set()
                return
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    self.connected.set()
                elif line == "":
                    if "event" in fields:
                        self.events.append((fields.get("id"), fields["event"],
                                            json.loads(fields["data"])))
                        self.arrived.append(time.monotonic())
                    fields = {}
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")


def _key(db_url: str) -> str:
    async def make() -> str:
        from coinpurse.auth import keys

        engine = create_engine(db_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                _, secret = await keys.create_key(conn, "games", "*")
        finally:
            await engine.dispose()
        return secret

    return asyncio.run(make())


async def _credit(base: str, key: str, user: str, amount: int,
                  address: str | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        if address is None:
            r = await client.post("/internal/v1/wallet/credit", headers={
                "X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex}, json={
                "user_id": user, "currency": "points", "amount": amount,
                "description": "d", "reference_id": "r"})
        else:
            r = await client.post("/internal/v1/transfers", headers={
                "X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex}, json={
                "postings": [{"source": "world", "destination": address, "amount": amount,
                              "currency": "points"}], "description": "d", "reference_id": "r"})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.fixture
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is missing: scripts/test installs Debian's redis-server")
    port = free_port()
    folder = tempfile.mkdtemp(prefix="coinpurse-redis-")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", folder],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


async def _across(a: Server, b: Server, key: str) -> None:
    """A credit through A reaches a subscriber on B within a second; nothing of other
    users; sub-wallets say which; a reconnect with Last-Event-ID gets what it missed."""
    async with Stream(b.base_url, "live-1") as stream:
        await _credit(a.base_url, key, "someone-else", 5)
        started = time.monotonic()
        tx = await _credit(a.base_url, key, "live-1", 40)
        await eventually(lambda: stream.events, timeout_s=5, what="balance.updated")
        assert stream.arrived[0] - started < 1.0, stream.arrived[0] - started
        [(first_id, event, data)] = stream.events
        assert event == "balance.updated" and first_id is not None
        assert data == {"wallet": "main", "address": "user:live-1", "currency": "points",
                        "balance": 40, "held": 0, "available": 40, "version": 1,
                        "transaction_id": tx["id"], "hold_id": None}
        await _credit(a.base_url, key, "live-1", 7, address="user:live-1:bonus")
        await eventually(lambda: len(stream.events) == 2, timeout_s=5)
        assert stream.events[1][2]["wallet"] == "bonus"
        assert stream.events[1][2]["address"] == "user:live-1:bonus"
    missed = [await _credit(a.base_url, key, "live-1", n) for n in (1, 2)]
    async with Stream(b.base_url, "live-1", last_event_id=stream.events[-1][0]) as resumed:
        await eventually(lambda: len(resumed.events) == 2, timeout_s=5)
        assert [e[2]["transaction_id"] for e in resumed.events] == [t["id"] for t in missed]
        assert [e[2]["balance"] for e in resumed.events] == [41, 43]


def _two_servers(url: str, env: dict[str, str]) -> None:
    key = _key(url)
    a = Server(url, extra_env=env)
    try:
        b = Server(url, extra_env=env)
        try:
            asyncio.run(_across(a, b, key))
        finally:
            b.stop()
    finally:
        a.stop()


def test_sse_across_two_processes_postgres(pg_url: str) -> None:
    from tests.conftest import _truncate

    _truncate(pg_url)
    _two_servers(pg_url, SLOW_POLL)


def test_sse_across_two_processes_redis(pg_url: str, redis_url: str) -> None:
    from tests.conftest import _truncate

    _truncate(pg_url)
    _two_servers(pg_url, {**SLOW_POLL, "COINPURSE_REDIS_URL": redis_url})


def test_sse_on_sqlite(tmp_path: Any, sqlite_template: Any) -> None:
    """One process (SQLite has one writer): the same stream, woken by its own commits."""
    path = tmp_path / "live.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    key = _key(url)
    server = Server(url, extra_env=SLOW_POLL)
    try:
        asyncio.run(_across(server, server, key))
    finally:
        server.stop()


async def _websocket(base: str, key: str) -> None:
    ws_url = base.replace("http://", "ws://") + "/api/v1/ws"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"token": user_token("ws-1")}))
        assert json.loads(await ws.recv()) == {"event": "ready", "data": {"user_id": "ws-1"}}
        tx = await _credit(base, key, "ws-1", 9)
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["event"] == "balance.updated"
        assert message["data"]["transaction_id"] == tx["id"] and message["data"]["balance"] == 9
        last = message["id"]
    await _credit(base, key, "ws-1", 1)
    headers = {**auth(user_token("ws-1")), "Last-Event-ID": last}
    async with websockets.connect(ws_url, additional_headers=headers) as ws:
        assert json.loads(await ws.recv())["event"] == "ready"
        resumed = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert resumed["data"]["balance"] == 10
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"token": "not-a-jwt"}))
        refused = json.loads(await ws.recv())
        assert refused["event"] == "error" and refused["data"]["code"] == "unauthorized"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_websocket(db_url: str, serve: Callable[..., Server]) -> None:
    key = _key(db_url)
    server = serve(**SLOW_POLL)
    asyncio.run(_websocket(server.base_url, key))


def _builtin_user(db_url: str, user_id: str) -> None:
    async def make() -> None:
        from coinpurse.auth import accounts

        engine = create_engine(db_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                await accounts.create_user(conn, f"{user_id}@example.com", "ws-cookie-password",
                                           "user", user_id=user_id)
        finally:
            await engine.dispose()

    asyncio.run(make())


async def _websocket_cookie(base: str, key: str) -> None:
    """The web wallet's session cookie opens the WebSocket from a page of the same origin
    only (a WebSocket carries no CSRF header); ``?last_event_id=`` resumes."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as browser:
        signed_in = await browser.post("/api/v1/auth/session", json={
            "email": "ws-cookie@example.com", "password": "ws-cookie-password"})
        assert signed_in.status_code == 200, signed_in.text
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    ws_url = base.replace("http://", "ws://") + "/api/v1/ws"
    own = {"Cookie": cookie, "Origin": base}
    async with websockets.connect(ws_url, additional_headers=own) as ws:
        assert json.loads(await ws.recv()) == {"event": "ready",
                                               "data": {"user_id": "ws-cookie"}}
        tx = await _credit(base, key, "ws-cookie", 4)
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["event"] == "balance.updated"
        assert message["data"]["transaction_id"] == tx["id"]
    await _credit(base, key, "ws-cookie", 3)
    async with websockets.connect(f"{ws_url}?last_event_id={message['id']}",
                                  additional_headers=own) as ws:
        assert json.loads(await ws.recv())["event"] == "ready"
        resumed = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert resumed["event"] == "balance.updated" and resumed["data"]["balance"] == 7
    for origin in ("http://evil.example", None):
        headers = {"Cookie": cookie, **({"Origin": origin} if origin else {})}
        async with websockets.connect(ws_url, additional_headers=headers) as ws:
            refused = json.loads(await ws.recv())
            assert refused["event"] == "error" and refused["data"]["code"] == "forbidden"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


def test_websocket_with_the_session_cookie(db_url: str, serve: Callable[..., Server]) -> None:
    key = _key(db_url)
    _builtin_user(db_url, "ws-cookie")
    server = serve(**SLOW_POLL, COINPURSE_AUTH="builtin")
    asyncio.run(_websocket_cookie(server.base_url, key))


async def _caps(base: str) -> None:
    async with Stream(base, "capped"):
        async with Stream(base, "capped") as second:
            assert second.status == 429
        async with Stream(base, "another") as third:
            assert third.status == 200
    async with httpx.AsyncClient(base_url=base) as client:
        bad = await client.get("/api/v1/events/stream", headers={
            **auth(user_token("x")), "Last-Event-ID": "abc"})
        assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
        assert (await client.get("/api/v1/events/stream")).status_code == 401


def test_stream_caps_and_bad_input(db_url: str, serve: Callable[..., Server]) -> None:
    server = serve(COINPURSE_LIVE_STREAMS_PER_USER="1", **SLOW_POLL)
    asyncio.run(_caps(server.base_url))


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[live.Hub]:
    db = create_engine(settings.database_url, pool_size=2)
    settings.live_queue_max = 8
    settings.live_resume_max = 10
    try:
        yield live.Hub(db, settings, service.Wakeup())
    finally:
        await db.dispose()


def _posted(n: int, user: str) -> StoredEvent:
    from datetime import UTC, datetime

    return StoredEvent(n, "transaction.posted", datetime.now(UTC), {"id": f"t{n}", "balances": [
        {"address": f"user:{user}", "currency": "points", "balance": n, "held": 0,
         "available": n, "version": n}]})


async def test_a_slow_subscriber_is_dropped(hub: live.Hub) -> None:
    slow = await hub.subscribe("slow", None)
    other = await hub.subscribe("other", None)
    hub.dispatch([_posted(n, "slow") for n in range(1, 20)])
    assert slow.dropped and hub.count == 1 and hub.dropped == 1
    assert not other.dropped and other.queue.empty()  # nothing of other users


async def test_a_resume_past_the_window_says_reset(hub: live.Hub) -> None:
    async with hub.db.begin() as conn:
        for n in range(30):
            await service.emit(conn, "transaction.posted", _posted(n, "r").data)
    sub = await hub.subscribe("r", 0)
    assert [m.event for m in sub.backlog] == ["reset"]
    assert sub.backlog[0].id == hub.position
    close = await hub.subscribe("r", hub.position - 5)
    assert [m.event for m in close.backlog] == ["balance.updated"] * 5


def test_open_streams_do_not_hold_up_a_shutdown(tmp_path: Any, sqlite_template: Any) -> None:
    import os
    import signal

    path = tmp_path / "live.db"
    shutil.copy(sqlite_template, path)
    server = Server(f"sqlite:///{path}", extra_env=SLOW_POLL)

    async def run() -> float:
        async with Stream(server.base_url, "stay") as stream:
            started = time.monotonic()
            os.killpg(server.proc.pid, signal.SIGTERM)
            await asyncio.get_running_loop().run_in_executor(None, server.proc.wait, 20)
            await eventually(lambda: stream.cut, timeout_s=5, what="the stream cut")
            return time.monotonic() - started

    try:
        assert asyncio.run(run()) < 15
    finally:
        server.stop()
