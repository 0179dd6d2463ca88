"""/healthz and /readyz, and the graceful shutdown of a real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from typing import Any

import httpx
from sqlalchemy import text

from coinpurse.core.db import create_engine


async def test_healthz_touches_nothing(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["pid"] == os.getpid()


async def test_ready_when_everything_is(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": {
        "database": "ok", "migrations": "ok", "jobs": "ok", "shutdown": "ok"}}


async def _not_ready(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/readyz")
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == "not_ready"
    return body


async def test_not_ready_when_migrations_are_behind(app: Any, client: httpx.AsyncClient,
                                                    db_url: str) -> None:
    engine = create_engine(db_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            head = (await conn.execute(text("SELECT version_num FROM alembic_version"))
                    ).scalar()
            await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        body = await _not_ready(client)
        assert body["checks"]["migrations"].startswith("the database is at 0001")
        assert "run coinpurse migrate" in body["detail"]
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :h"), {"h": head})
        await engine.dispose()
    assert (await client.get("/readyz")).status_code == 200


async def test_not_ready_when_the_database_is_unreachable(app: Any,
                                                          client: httpx.AsyncClient) -> None:
    state = app.state.coinpurse
    real = state.db
    state.db = create_engine("postgresql://nobody@127.0.0.1:9/none", pool_size=1)
    try:
        body = await _not_ready(client)
        assert body["checks"]["database"].startswith("unreachable")
        assert body["checks"]["jobs"] == "ok"
    finally:
        await state.db.dispose()
        state.db = real


async def test_not_ready_when_a_background_job_died(app: Any,
                                                    client: httpx.AsyncClient) -> None:
    status = app.state.jobs.status["hold-expiry"]
    assert status.task is not None
    status.task.cancel()
    await asyncio.sleep(0.05)
    body = await _not_ready(client)
    assert body["checks"]["jobs"] == "not running: hold-expiry"
    assert body["checks"]["database"] == "ok"


def test_graceful_shutdown_finishes_requests_in_flight(serve: Any, db_url: str,
                                                       make_key_sync: Any) -> None:
    """SIGTERM while a request is half sent: the server stops accepting, finishes that
    request (the credit is posted and answered 201), then exits cleanly."""
    key = make_key_sync(db_url)
    server = serve()
    body = json.dumps({"user_id": "u1", "currency": "points", "amount": 9,
                       "description": "d", "reference_id": "r"}).encode()
    head = (f"POST /internal/v1/wallet/credit HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
            f"Idempotency-Key: drain-1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body[:10])
        # Another request answered after ours was sent: the server's loop has read ours by
        # now (the same loop serves both, in order), so it is in flight.
        time.sleep(0.2)
        assert httpx.get(server.base_url + "/healthz", timeout=30).status_code == 200
        os.killpg(server.proc.pid, signal.SIGTERM)
        # Shutting down: no new connections are taken...
        deadline = time.monotonic() + 20
        refused = False
        while not refused and time.monotonic() < deadline:
            try:
                httpx.get(server.base_url + "/healthz", timeout=1)
                time.sleep(0.1)
            except httpx.HTTPError:
                refused = True
        assert refused
        sock.sendall(body[10:])  # ... but the request in flight is finished
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
    # uvicorn re-raises the signal once it has shut down cleanly (exit status -15).
    assert server.proc.wait(20) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.output()
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["wallet"]["balance"] == 9
