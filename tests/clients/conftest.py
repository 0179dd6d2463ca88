"""One real ``coinpurse serve`` per database for the client tests of a module.

Starting a server per test would cost more than the tests; each test uses its own user ids
(``fresh_user``) so they do not see each other's money.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coinpurse.auth import keys
from coinpurse.core.db import create_engine
from tests.clients.proxy import FaultProxy
from tests.conftest import Server, _truncate, user_token

# Tier 0 may withdraw, so the clients' withdrawal calls can be tried without an operator.
KYC_TIERS = {
    "0": {"requires": [], "withdrawals": True, "limits": {}},
    "1": {"requires": ["full_name", "date_of_birth", "country"], "withdrawals": True,
          "limits": {}},
}
SERVER_ENV = {
    "COINPURSE_WITHDRAWAL_CURRENCIES": "points:1",
    "COINPURSE_KYC_TIERS": json.dumps(KYC_TIERS),
}


@dataclass
class Backend:
    name: str
    db_url: str
    server: Server
    api_key: str

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def token(self, user_id: str) -> str:
        return user_token(user_id)


def create_key(db_url: str, service: str = "games", scopes: str = "*") -> str:
    async def run() -> str:
        engine = create_engine(db_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                _, secret = await keys.create_key(conn, service, scopes)
        finally:
            await engine.dispose()
        return secret

    return asyncio.run(run())


def database(name: str, request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> str:
    if name == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("clients") / "coinpurse.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    _truncate(url)
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    url = database(request.param, request, tmp_path_factory)
    server = Server(url, extra_env=SERVER_ENV)
    try:
        yield Backend(request.param, url, server, create_key(url))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def limited(backend: Backend) -> Iterator[Server]:
    """A second server on the same database whose rate limiter allows 2 calls/s per key."""
    server = Server(backend.db_url,
                    extra_env={**SERVER_ENV, "COINPURSE_RATE_LIMIT_SERVICE": "2/second"})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def proxy(backend: Backend) -> Iterator[FaultProxy]:
    p = FaultProxy(backend.server.port)
    yield p
    p.close()
