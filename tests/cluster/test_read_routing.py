"""Read routing against a real streaming standby of the test server (pg_basebackup -R).

Replay is paused on the standby to make it lag on purpose: the user's history must still
show what was just acknowledged (the primary answers), and the standby must answer again
once it has caught up."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event, text

from coinpurse.app import create_app
from coinpurse.auth import keys
from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from tests.cluster.test_multihost import _port
from tests.conftest import TEST_JWT_SECRET, _truncate, auth, user_token
from tests.pgserver import PgServer, free_port


class Standby(PgServer):
    """A hot standby of ``primary_port``, cloned with pg_basebackup instead of initdb."""

    def __init__(self, primary_port: int) -> None:
        super().__init__(settings={"hot_standby": "on"})
        self.primary_port = primary_port

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bindir / "pg_basebackup"), "-D", str(self.data), "-h", "127.0.0.1",
                  "-p", str(self.primary_port), "-U", "postgres", "-R", "-X", "stream",
                  "--checkpoint=fast")
        opts = f"-p {self.port} -k {self.root} " + " ".join(
            f"-c {name}={value}" for name, value in self.settings.items())
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "log"), "-o", opts, "-w", "-t", "60", "start")


@pytest.fixture(scope="module")
def standby(pg_url: str) -> Iterator[Standby]:
    server = Standby(_port(pg_url))
    server.start()
    yield server
    server.stop()


async def _sql(url: str, query: str) -> Any:
    db = create_engine(url, pool_size=1)
    try:
        async with db.connect() as conn:
            value = (await conn.execute(text(query))).scalar()
            await conn.commit()
            return value
    finally:
        await db.dispose()


async def _caught_up(primary: str, standby: str) -> None:
    target = await _sql(primary, "SELECT pg_current_wal_lsn()::text")
    for _ in range(200):
        if await _sql(standby, f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the standby did not catch up")


@pytest.fixture
def clean_pg(pg_url: str) -> str:
    _truncate(pg_url)
    return pg_url


@pytest.fixture
async def routed(clean_pg: str, standby: Standby) -> AsyncIterator[tuple[httpx.AsyncClient,
                                                                       list[str], str]]:
    pg_url = clean_pg
    standby_url = standby.url(pg_url.rsplit("/", 1)[1])
    settings = Settings(database_url=pg_url, read_database_url=standby_url,
                        jwt_secret=TEST_JWT_SECRET)  # type: ignore[arg-type]
    db = create_engine(pg_url, pool_size=1)
    async with db.begin() as conn:
        _, secret = await keys.create_key(conn, "games", "*")
    await db.dispose()
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60):
        on_standby: list[str] = []
        read_db = app.state.coinpurse.reads.standby
        assert read_db is not None

        @event.listens_for(read_db.sync_engine, "before_cursor_execute")
        def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
            on_standby.append(statement)

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            c.headers["X-API-Key"] = secret
            yield c, on_standby, standby_url
        await _sql(standby_url, "SELECT pg_wal_replay_resume()")


def _entries_read(statements: list[str]) -> bool:
    return any("FROM entries" in s for s in statements)


async def _credit(c: httpx.AsyncClient, key: str, amount: int) -> None:
    r = await c.post("/internal/v1/wallet/credit", headers={"Idempotency-Key": key}, json={
        "user_id": "alice", "currency": "points", "amount": amount,
        "description": "credit", "reference_id": key})
    assert r.status_code == 201, r.text


async def test_history_reads_the_standby_only_when_it_is_up_to_date(
        routed: tuple[httpx.AsyncClient, list[str], str], pg_url: str) -> None:
    c, on_standby, standby_url = routed
    mine = auth(user_token("alice"))
    await _credit(c, "k1", 100)
    await _caught_up(pg_url, standby_url)
    on_standby.clear()
    r = await c.get("/api/v1/wallet/transactions", headers=mine)
    assert [e["amount"] for e in r.json()["data"]] == [100]
    assert _entries_read(on_standby), "an up-to-date standby serves the page"

    await _sql(standby_url, "SELECT pg_wal_replay_pause()")
    await _credit(c, "k2", 7)
    on_standby.clear()
    r = await c.get("/api/v1/wallet/transactions", headers=mine)
    assert [e["amount"] for e in r.json()["data"]] == [7, 100], "read your own writes"
    assert not _entries_read(on_standby), "a lagging standby is not used for this wallet"
    r = await c.get("/internal/v1/wallet/transactions/alice")
    assert [e["amount"] for e in r.json()["data"]] == [7, 100]
    # another wallet, unchanged since the pause: the lagging standby is good enough for it
    on_standby.clear()
    r = await c.get("/api/v1/wallet/transactions", headers=auth(user_token("bob")))
    assert r.status_code == 200 and r.json()["data"] == []
    assert _entries_read(on_standby)

    await _sql(standby_url, "SELECT pg_wal_replay_resume()")
    await _caught_up(pg_url, standby_url)
    on_standby.clear()
    r = await c.get("/api/v1/wallet/transactions", headers=mine)
    assert [e["amount"] for e in r.json()["data"]] == [7, 100]
    assert _entries_read(on_standby), "caught up: the standby serves it again"


async def test_an_unreachable_standby_leaves_reads_to_the_primary(clean_pg: str) -> None:
    pg_url = clean_pg
    settings = Settings(database_url=pg_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                        read_database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x",
                        db_connect_timeout_s=1)
    db = create_engine(pg_url, pool_size=1)
    async with db.begin() as conn:
        _, secret = await keys.create_key(conn, "games", "*")
    await db.dispose()
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            c.headers["X-API-Key"] = secret
            await _credit(c, "k1", 5)
            r = await c.get("/api/v1/wallet/transactions", headers=auth(user_token("alice")))
            assert r.status_code == 200 and [e["amount"] for e in r.json()["data"]] == [5]
