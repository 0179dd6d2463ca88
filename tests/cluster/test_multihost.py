"""A multi-host URL against real servers: a dead host is skipped, a read-only one too
(``target_session_attrs=read-write``), and the HTTP edge answers 503 while the database is
away, then recovers by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from coinpurse.app import create_app
from coinpurse.config import Settings
from coinpurse.core.db import create_engine, migrate
from tests.conftest import TEST_JWT_SECRET, _truncate, auth, user_token
from tests.netfault import FaultProxy
from tests.pgserver import PgServer, free_port


def _port(url: str) -> int:
    return int(url.rsplit("@", 1)[1].split("/", 1)[0].split(":")[1])


@pytest.fixture(scope="module")
def read_only_server() -> Iterator[PgServer]:
    """Stands for a standby: it refuses writes, as a hot standby does."""
    server = PgServer()
    server.start()
    url = server.createdb("coinpurse_test")

    async def read_only() -> None:
        db = create_engine(url, pool_size=1)
        async with db.begin() as conn:
            await conn.execute(text(
                "ALTER DATABASE coinpurse_test SET default_transaction_read_only = on"))
        await db.dispose()

    asyncio.run(read_only())
    yield server
    server.stop()


async def _served_port(url: str) -> int:
    db = create_engine(url, pool_size=1)
    try:
        async with db.connect() as conn:
            return int((await conn.execute(text("SHOW port"))).scalar_one())
    finally:
        await db.dispose()


async def test_dead_and_read_only_hosts_are_skipped(pg_url: str,
                                                    read_only_server: PgServer) -> None:
    rw = _port(pg_url)
    ro = read_only_server.port
    dead = free_port()
    hosts = f"127.0.0.1:{dead},127.0.0.1:{ro},127.0.0.1:{rw}"
    url = f"postgresql://postgres@{hosts}/coinpurse_test?target_session_attrs=read-write"
    assert await _served_port(url) == rw
    await migrate(url)  # runs (nothing to do) through the same URL
    any_url = f"postgresql://postgres@127.0.0.1:{ro},127.0.0.1:{rw}/coinpurse_test"
    assert await _served_port(any_url) == ro  # without the attribute: the first that answers


@pytest.fixture
def proxy(pg_url: str) -> Iterator[FaultProxy]:
    _truncate(pg_url)
    p = FaultProxy(_port(pg_url))
    yield p
    p.stop()


@pytest.fixture
async def client(proxy: FaultProxy, pg_url: str) -> AsyncIterator[httpx.AsyncClient]:
    url = pg_url.replace(f"127.0.0.1:{_port(pg_url)}", f"127.0.0.1:{proxy.port}")
    settings = Settings(database_url=url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                        db_connect_timeout_s=1, db_command_timeout_s=1.5, db_retry_s=1)
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def test_outage_answers_503_then_recovers(client: httpx.AsyncClient,
                                                proxy: FaultProxy) -> None:
    headers = auth(user_token("alice"))
    assert (await client.get("/api/v1/wallet/balance", headers=headers)).status_code == 200
    proxy.reset_all()
    proxy.blackhole()
    started = time.monotonic()
    r = await client.get("/api/v1/wallet/balance", headers=headers)
    assert time.monotonic() - started < 5
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "service_unavailable" and r.headers["retry-after"] == "1"
    proxy.blackhole(False)
    r = await client.get("/api/v1/wallet/balance", headers=headers)
    assert r.status_code == 200, r.text
