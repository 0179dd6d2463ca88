"""Test set-up: every database test runs on SQLite and on a real PostgreSQL server.

The PostgreSQL server is started once per session from the machine's binaries
(``tests/pgserver.py``); each test gets empty tables. SQLite tests get a fresh file copied
from a migrated template.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from coinpurse.app import create_app
from coinpurse.auth import keys
from coinpurse.auth.tokens import issue_hs256
from coinpurse.config import Settings
from coinpurse.core.db import create_engine, migrate_sync
from coinpurse.core.tables import metadata
from tests.pgserver import PgServer, free_port

# The daily reconciliation would run in every test app started after 02:00 UTC: off, except
# in the tests of the schedule, which set it themselves.
os.environ.setdefault("COINPURSE_RECONCILE_AT", "never")

# Clearly fake: tests only.
TEST_JWT_SECRET = "test-only-secret-not-for-production-0123456789"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database on a server of our own (or COINPURSE_TEST_PG_URL)."""
    external = os.environ.get("COINPURSE_TEST_PG_URL")
    if external:
        migrate_sync(external)
        yield external
        return
    server = PgServer()
    server.start()
    try:
        url = server.createdb("coinpurse_test")
        migrate_sync(url)
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate_sync(f"sqlite:///{path}")
    return path


def _truncate(url: str) -> None:
    async def run() -> None:
        engine = create_engine(url, pool_size=1)
        async with engine.begin() as conn:
            # The ledger's tables refuse TRUNCATE (append-only triggers, migration
            # 0115_reconcile). The tests' superuser may switch triggers off for its own
            # session; the application's role cannot (README "Integrity").
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            names = ", ".join(t.name for t in metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "coinpurse.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_url")
    _truncate(url)
    return url


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                    currencies="points:0,usdt:2,diamonds:0")


# Long enough for the app's own bounded shutdown (a job cancelled inside an SQLite statement
# waits out the busy timeout): cutting it short left tasks on a disposed engine, and the
# loop's teardown then waited for them for ever.
SHUTDOWN_S = 60


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with LifespanManager(application, shutdown_timeout=SHUTDOWN_S):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


MakeKey = Callable[..., Awaitable[str]]


@pytest.fixture
def make_key(settings: Settings) -> MakeKey:
    """Create a service key in the test database and return its secret."""

    async def make(service: str = "games", scopes: str = "*") -> str:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                _, secret = await keys.create_key(conn, service, scopes)
        finally:
            await engine.dispose()
        return secret

    return make


def user_token(user_id: str, **claims: Any) -> str:
    return issue_hs256(TEST_JWT_SECRET, user_id, **claims)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Server:
    """``coinpurse serve`` in a subprocess: a real HTTP server with real worker processes."""

    def __init__(self, db_url: str, workers: int = 1, extra_env: dict[str, str] | None = None,
                 args: list[str] | None = None):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "COINPURSE_DATABASE_URL": db_url,
               "COINPURSE_JWT_SECRET": TEST_JWT_SECRET,
               "COINPURSE_CURRENCIES": "points:0,usdt:2,diamonds:0",
               **(extra_env or {})}
        self.log = tempfile.NamedTemporaryFile(prefix="coinpurse-serve-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coinpurse", "serve", "--port", str(self.port),
             "--workers", str(workers), *(args or [])],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() takes the workers too
        )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()  # not left running when it fails to start
            raise

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        """A crash: SIGKILL to the server and every worker process, no clean shutdown."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def serve(db_url: str) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(workers: int = 1, **env: str) -> Server:
        server = Server(db_url, workers=workers, extra_env=env)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()
