"""OpenTelemetry when configured (spans for requests, SQL and ledger batches reach a local
OTLP receiver), nothing of it otherwise; argon2 off the event loop and outside transactions."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.pgserver import free_port


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    handler = type("Handler", (_Receiver,), {"bodies": bodies})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()
        server.server_close()


def _spans(bodies: list[bytes]) -> list[Any]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    found = []
    for body in bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                found.extend(scope.spans)
    return found


def test_traces_reach_the_collector(db_url: str, make_key_sync: Any,
                                          receiver: tuple[str, list[bytes]]) -> None:
    endpoint, bodies = receiver
    key = make_key_sync(db_url)
    server = Server(db_url, extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                                       "OTEL_BSP_SCHEDULE_DELAY": "200"})
    try:
        r = httpx.post(server.base_url + "/internal/v1/wallet/credit", headers={
            "X-API-Key": key, "Idempotency-Key": "traced"}, json={
            "user_id": "u1", "currency": "points", "amount": 3, "description": "d",
            "reference_id": "r"})
        assert r.status_code == 201
        deadline = time.monotonic() + 30
        names: set[str] = set()
        while time.monotonic() < deadline:
            spans = _spans(list(bodies))
            names = {s.name for s in spans}
            if "ledger.batch" in names and any("/internal/v1/wallet/credit" in n
                                                for n in names):
                break
            time.sleep(0.2)
    finally:
        server.stop()
    spans = _spans(list(bodies))
    assert any(n.startswith("POST /internal/v1/wallet/credit") for n in names), names
    batch = [s for s in spans if s.name == "ledger.batch"]
    assert batch and {a.key: a.value.int_value for a in batch[0].attributes}[
        "coinpurse.batch.transactions"] == 1
    sql = {s.name.split()[0].upper() for s in spans}  # SQLAlchemy's: "INSERT <db>", ...
    assert {"INSERT", "UPDATE"} & sql, {s.name for s in spans}


def test_tracing_is_off_and_free_without_the_variable(db_url: str) -> None:
    code = ("import sys\nfrom coinpurse.app import create_app\n"
            "from coinpurse.config import Settings\n"
            f"create_app(Settings(database_url={db_url!r}))\n"
            "print(sorted(m for m in sys.modules if m.startswith(("
            "'opentelemetry.sdk', 'opentelemetry.instrumentation', "
            "'opentelemetry.exporter'))))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


async def test_argon2_runs_on_a_worker_thread_with_no_connection_held(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registration and sign-in hash and verify on a worker thread, while the request holds
    no database connection (so no transaction and no lock waits on argon2)."""
    import asyncio

    from asgi_lifespan import LifespanManager

    from coinpurse.app import create_app
    from coinpurse.auth import accounts
    from coinpurse.config import Settings
    from tests.conftest import TEST_JWT_SECRET

    app = create_app(Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                              auth="builtin", rate_limit_login="off"))
    seen: list[tuple[str, bool, int]] = []
    held = [0]  # connections the test's requests hold right now
    real = accounts._hasher
    test_task: list[Any] = []

    class Watching:
        def __getattr__(self, name: str) -> Any:
            attr = getattr(real, name)
            if name not in ("hash", "verify"):
                return attr

            def watched(*args: Any) -> Any:
                seen.append((name, threading.current_thread() is threading.main_thread(),
                             held[0]))
                return attr(*args)
            return watched

    class Counting:
        """Counts the connections the requests (this test's task) have open."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.mine = asyncio.current_task() in test_task

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        async def __aenter__(self) -> Any:
            held[0] += self.mine
            return await self.inner.__aenter__()

        async def __aexit__(self, *exc: Any) -> Any:
            try:
                return await self.inner.__aexit__(*exc)
            finally:
                held[0] -= self.mine

    monkeypatch.setattr(accounts, "_hasher", Watching())
    async with LifespanManager(app, shutdown_timeout=60):
        db = app.state.coinpurse.db
        begin, connect = db.begin, db.connect
        monkeypatch.setattr(db, "begin", lambda: Counting(begin()))
        monkeypatch.setattr(db, "connect", lambda: Counting(connect()))
        test_task.append(asyncio.current_task())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as c:
            body = {"email": "argon@example.com", "password": "a long enough password"}
            assert (await c.post("/api/v1/auth/register", json=body)).status_code == 202
            assert (await c.post("/api/v1/auth/login", json=body)).status_code == 200
            wrong = {**body, "password": "not the password at all"}
            assert (await c.post("/api/v1/auth/login", json=wrong)).status_code == 401
        assert held[0] == 0
    assert [name for name, _, _ in seen] == ["hash", "verify", "verify"]
    assert all(not on_main for _, on_main, _ in seen), seen
    assert all(n == 0 for _, _, n in seen), seen
