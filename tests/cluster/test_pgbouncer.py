"""Coinpurse behind Debian's PgBouncer (1.18) in transaction pooling mode.

Transaction pooling hands each transaction whichever server connection is free, so nothing
may outlive a transaction on the server side: no session settings, no session advisory
locks, no LISTEN, and no named prepared statements (PgBouncer 1.18 does not track them).
``COINPURSE_DB_POOLING=transaction`` takes care of the statements; the migration lock is
transaction-scoped; the key cache listens on ``COINPURSE_DIRECT_DATABASE_URL`` or stays off.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from coinpurse.core.cluster.urls import DbOptions
from coinpurse.core.db import create_engine, migrate
from tests.cluster.test_multihost import _port
from tests.conftest import Server, _truncate
from tests.invariants import assert_invariants, ledger_state_async
from tests.pgbouncer import PgBouncer
from tests.test_cli import run
from tests.test_concurrency import CURRENCIES, USERS, _prime, random_request

CLIENTS = 40
LOAD_S = 4.0  # at least; longer on a busy machine, until ACCEPTED_MIN transfers went through
LOAD_MAX_S = 60.0
ACCEPTED_MIN = 120
POOLED = {"COINPURSE_DB_POOLING": "transaction"}


@pytest.fixture(scope="module")
def bouncer(pg_url: str) -> Iterator[PgBouncer]:
    b = PgBouncer(_port(pg_url), pool_size=8)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def pooled_url(pg_url: str, bouncer: PgBouncer) -> str:
    _truncate(pg_url)
    return bouncer.url(pg_url.rsplit("/", 1)[1])


async def _many_transactions(url: str, options: DbOptions) -> None:
    db = create_engine(url, pool_size=12, options=options)

    async def one(i: int) -> None:
        async with db.begin() as conn:
            await conn.execute(text("SELECT CAST(:i AS int)"), {"i": i})
            await conn.execute(text("SELECT count(*) FROM accounts WHERE id > :i"), {"i": i})

    try:
        await asyncio.gather(*(one(i) for i in range(400)))
    finally:
        await db.dispose()


async def test_transaction_pooling_has_no_prepared_statement_surprises(
        pooled_url: str) -> None:
    """12 client connections share 8 server connections: with named statements (the
    default) one is looked up on a server connection that never prepared it."""
    await _many_transactions(pooled_url, DbOptions(pooling="transaction"))
    with pytest.raises(Exception, match="prepared statement"):
        await _many_transactions(pooled_url, DbOptions(pooling="session"))


async def test_concurrent_migrations_through_pgbouncer(bouncer: PgBouncer) -> None:
    """The migration lock is transaction-scoped, so it holds through transaction pooling."""
    server_port = bouncer.upstream_port
    name = f"mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"postgresql://postgres@127.0.0.1:{server_port}/postgres",
                          pool_size=1)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        url = bouncer.url(name)
        options = DbOptions(pooling="transaction")
        await asyncio.gather(*(migrate(url, options) for _ in range(3)))
        db = create_engine(url, pool_size=1, options=options)
        async with db.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))
                        ).scalars().all()
            await conn.execute(text("SELECT count(*) FROM transactions"))
        await db.dispose()
        assert len(versions) == 1
    finally:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        await admin.dispose()


async def _load(server: Server, key: str, db_url: str) -> None:
    """Concurrent credits, debits and transfers; then the invariants and exactly-once."""
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30) as http:
        primed = await _prime(http, key)
        accepted: list[str] = []
        unexpected: list[str] = []
        started = time.monotonic()

        def loading() -> bool:
            elapsed = time.monotonic() - started
            return elapsed < LOAD_S or (len(accepted) < ACCEPTED_MIN and elapsed < LOAD_MAX_S)

        async def client(seed: int) -> None:
            rng = random.Random(seed)
            while loading():
                path, body = random_request(rng)
                r = await http.post(path, json=body, headers={
                    "X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex})
                if r.status_code == 201:
                    accepted.append(r.json()["id"])
                elif not (r.status_code == 422 and r.json()["code"] == "insufficient_funds"):
                    unexpected.append(f"{r.status_code} {r.text}")
                # history and balance reads share the pooled connections
                if seed % 4 == 0:
                    user = rng.choice(USERS)
                    r = await http.get(f"/internal/v1/wallet/transactions/{user}?limit=5",
                                       headers={"X-API-Key": key})
                    if r.status_code != 200:
                        unexpected.append(f"{r.status_code} {r.text}")

        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    assert unexpected == []
    assert len(accepted) > 100
    state = await ledger_state_async(db_url)
    assert_invariants(state)
    assert state["tx_count"] == primed + len(accepted) == len(state["tx_ids"])
    assert set(accepted) <= state["tx_ids"]
    assert primed == len(USERS) * len(CURRENCIES)


def _key(url: str, **env: str) -> dict[str, Any]:
    created = run(url, "keys", "create", "--service", "load", "--scopes", "*", "--json", **env)
    assert created.returncode == 0, created.stderr
    key: dict[str, Any] = json.loads(created.stdout)
    return key


def _revoke_is_immediate(server: Server, url: str, key: dict[str, Any], **env: str) -> None:
    h = {"X-API-Key": key["key"]}
    assert httpx.get(f"{server.base_url}/internal/v1/wallet/balance/u1", headers=h,
                     timeout=5).status_code == 200
    assert run(url, "keys", "revoke", key["id"], **env).returncode == 0
    deadline = time.monotonic() + 2
    while True:  # the cache hears of it by NOTIFY, which is asynchronous
        r = httpx.get(f"{server.base_url}/internal/v1/wallet/balance/u1", headers=h, timeout=5)
        if r.status_code == 401 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 401


@pytest.mark.slow
def test_serve_through_pgbouncer_without_direct_url(
        pooled_url: str, pg_url: str, serve_url: Callable[..., Server]) -> None:
    """No direct URL: the key cache is off (every request reads its key), all else works."""
    server = serve_url(pooled_url, workers=2, **POOLED)
    key = _key(pooled_url, **POOLED)
    asyncio.run(_load(server, key["key"], pg_url))
    _revoke_is_immediate(server, pooled_url, key, **POOLED)


@pytest.mark.slow
def test_serve_through_pgbouncer_with_direct_url(
        pooled_url: str, pg_url: str, serve_url: Callable[..., Server]) -> None:
    """With a direct URL the key cache LISTENs there; migrations run there too."""
    env = {**POOLED, "COINPURSE_DIRECT_DATABASE_URL": pg_url}
    server = serve_url(pooled_url, workers=2, **env)
    key = _key(pooled_url, **env)
    asyncio.run(_load(server, key["key"], pg_url))
    _revoke_is_immediate(server, pooled_url, key, **env)


@pytest.fixture
def serve_url() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(url: str, workers: int = 1, **env: str) -> Server:
        server = Server(url, workers=workers, extra_env=env)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()



async def test_key_cache_listens_only_on_a_session(pooled_url: str, pg_url: str) -> None:
    from coinpurse.auth.keycache import KeyCache

    pooled = KeyCache()
    pooled.start(pooled_url, DbOptions(pooling="transaction"))
    assert not pooled.active  # LISTEN through transaction pooling would hear nothing
    direct = KeyCache()
    direct.start(pg_url, DbOptions())
    try:
        for _ in range(100):
            if direct.active:
                break
            await asyncio.sleep(0.05)
        assert direct.active
    finally:
        await direct.stop()
        await pooled.stop()
