"""Forwarded addresses believed only from trusted proxies (rate limits, audit log), and
rate limits shared by several processes through a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from coinpurse.app import create_app
from coinpurse.config import Settings
from tests.conftest import TEST_JWT_SECRET, Server, auth, user_token

ADMIN = auth(user_token("ops-admin", role="admin", mfa=True))


def _settings(db_url: str, **extra: Any) -> Settings:
    return Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                    auth="builtin", rate_limit_login="off", **extra)


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60):
        # The ASGI transport's peer is 127.0.0.1, standing in for the load balancer.
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4321))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


@pytest.fixture
async def trusting(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(_settings(db_url, trusted_proxies="10.0.0.0/8, 127.0.0.1",
                                     rate_limit_ip="2/minute")):
        yield c


@pytest.fixture
async def distrusting(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(_settings(db_url, rate_limit_ip="2/minute")):
        yield c


async def _failed_login_ip(client: httpx.AsyncClient, forwarded: str) -> str | None:
    await client.post("/api/v1/auth/login", headers={"X-Forwarded-For": forwarded},
                      json={"email": "who@example.com", "password": "not the password"})
    log = await client.get("/admin/v1/audit-log?action=auth.login_failed&limit=1",
                           headers={**ADMIN, "X-Forwarded-For": forwarded})
    assert log.status_code == 200, log.text
    ip: str | None = log.json()["data"][0]["ip"]
    return ip


async def test_a_trusted_proxy_names_the_client(trusting: httpx.AsyncClient) -> None:
    # The rightmost address that is not a trusted proxy is the client's.
    assert await _failed_login_ip(trusting, "198.51.100.1, 203.0.113.7, 10.1.2.3") == \
        "203.0.113.7"


async def test_forwarded_headers_are_ignored_by_default(
        distrusting: httpx.AsyncClient) -> None:
    assert await _failed_login_ip(distrusting, "203.0.113.7") == "127.0.0.1"


async def test_limits_count_the_forwarded_client(trusting: httpx.AsyncClient) -> None:
    token = auth(user_token("u1"))
    first = [await trusting.get("/api/v1/wallet/balance",
                                headers={**token, "X-Forwarded-For": "203.0.113.7"})
             for _ in range(3)]
    assert [r.status_code for r in first] == [200, 200, 429]
    assert first[0].headers["ratelimit-limit"] == "2"
    assert first[0].headers["ratelimit-remaining"] == "1"
    assert first[1].headers["ratelimit-remaining"] == "0"
    assert first[0].headers["ratelimit-policy"] == "2;w=60"
    assert int(first[2].headers["retry-after"]) >= 1
    assert first[2].json()["code"] == "rate_limited"
    other = await trusting.get("/api/v1/wallet/balance",
                               headers={**token, "X-Forwarded-For": "203.0.113.8"})
    assert other.status_code == 200


async def test_a_spoofed_header_buys_nothing(distrusting: httpx.AsyncClient) -> None:
    token = auth(user_token("u1"))
    codes = [(await distrusting.get("/api/v1/wallet/balance", headers={
        **token, "X-Forwarded-For": f"203.0.113.{i}"})).status_code for i in range(3)]
    assert codes == [200, 200, 429]


def test_a_shared_limit_across_processes(pg_url: str, redis_url: str) -> None:
    """5/minute per user with serve --workers 2 and Redis: exactly 5 get through, whichever
    process answers, and the refusals say when to come back."""
    server = Server(pg_url, workers=2, extra_env={
        "COINPURSE_REDIS_URL": redis_url, "COINPURSE_RATE_LIMIT_USER": "5/minute",
        "COINPURSE_RATE_LIMIT_IP": "off"})
    try:
        token = auth(user_token("limited-user"))
        answers = []
        pids = set()
        # A new connection each (the balance and the pid come from the same process);
        # on until both processes have answered.
        while len(answers) < 30 or (len(pids) < 2 and len(answers) < 300):
            with httpx.Client(base_url=server.base_url) as c:
                answers.append(c.get("/api/v1/wallet/balance", headers=token))
                pids.add(c.get("/healthz").json()["pid"])
        codes = [r.status_code for r in answers]
        assert codes.count(200) == 5 and codes.count(429) == len(codes) - 5, codes
        assert codes[:5] == [200] * 5
        assert [r.headers["ratelimit-remaining"] for r in answers[:5]] == \
            ["4", "3", "2", "1", "0"]
        assert all(int(r.headers["retry-after"]) >= 1 for r in answers[5:])
        assert all(r.headers["ratelimit-limit"] == "5" for r in answers)
        assert len(pids) == 2, "both processes answered"
    finally:
        server.stop()
