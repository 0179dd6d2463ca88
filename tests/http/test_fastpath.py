"""The fast path (http/fastpath.py) answers exactly what the FastAPI routes answer.

The same requests, good and bad, go to an app with the fast path and to one without it,
each on a fresh database; status, headers and body must be equal byte for byte once the
values that differ by nature (transaction ids, times) are masked.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from coinpurse.app import create_app
from coinpurse.auth import keys
from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.http import fastpath
from tests.conftest import TEST_JWT_SECRET, _truncate, auth, user_token

CREDIT = "/internal/v1/wallet/credit"
DEBIT = "/internal/v1/wallet/debit"
TRANSFERS = "/internal/v1/transfers"
BATCH = "/internal/v1/transfers/batch"
# A transaction id (UUIDv7) and an ISO time: they differ between two runs by nature.
_VOLATILE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}"
                       rb"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")

Answer = tuple[int, list[tuple[str, str]], bytes]


def _change(user: str = "u1", amount: Any = 100, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "currency": "points", "amount": amount,
            "description": "Test movement", "reference_id": "ref-1", **extra}


def _transfer(src: str = "user:u1", dst: str = "user:u2", amount: Any = 5,
              **extra: Any) -> dict[str, Any]:
    return {"postings": [{"source": src, "destination": dst, "amount": amount,
                          "currency": "points"}],
            "description": "A transfer", "reference_id": "t-1", **extra}


async def _scenario(client: httpx.AsyncClient, key: str, read_key: str) -> list[Answer]:
    """Every request of the comparison, in order; returns each answer."""
    answers: list[Answer] = []
    token = user_token("u1")

    async def send(method: str, path: str, *, body: Any = None, raw: bytes | None = None,
                   headers: dict[str, str] | None = None) -> None:
        h = {"X-Request-ID": f"req-{len(answers)}", **(headers or {})}  # echoed by ops' middleware
        content = raw
        if body is not None:
            content = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        r = await client.request(method, path, content=content, headers=h)
        answers.append((r.status_code, sorted(r.headers.items()), r.content))

    def svc(idem: str | None = None, k: str | None = None, **extra: str) -> dict[str, str]:
        h = {"X-API-Key": k if k is not None else key}
        if idem is not None:
            h["Idempotency-Key"] = idem
        return {**h, **extra}

    # Writes that post, replays and conflicts.
    await send("POST", CREDIT, body=_change(amount=1000), headers=svc("c1"))
    await send("POST", CREDIT, body=_change(amount=1000), headers=svc("c1"))  # replay
    await send("POST", CREDIT, body=_change(amount=999), headers=svc("c1"))  # reused
    await send("POST", CREDIT, body=_change("u2", 50, metadata={"a": [1, 2.5, None]},
                                            internal_notes="n"), headers=svc("c2"))
    await send("POST", DEBIT, body=_change(amount=30), headers=svc("d1"))
    await send("POST", DEBIT, body=_change(amount=10**9), headers=svc("d2"))  # insufficient
    await send("POST", TRANSFERS, body=_transfer(), headers=svc("t1"))
    await send("POST", TRANSFERS, body=_transfer(), headers=svc("t1"))  # replay
    await send("POST", TRANSFERS, body=_transfer(amount=10**9), headers=svc("t2"))
    await send("POST", TRANSFERS, body=_transfer(kind="gift"), headers=svc("t3"))
    batch = {"transfers": [_transfer(), _transfer(amount=10**9), _transfer("user:u2", "user:u1")]}
    await send("POST", BATCH, body=batch, headers=svc("b1"))
    await send("POST", BATCH, body=batch, headers=svc("b1"))  # replay
    await send("POST", BATCH, body={**batch, "atomic": True}, headers=svc("b2"))
    # Bad input: every one must change nothing and answer the same problem.
    bads: list[Any] = [
        _change(amount="10"), _change(amount=1.5), _change(amount=2**70),
        _change(amount=0), _change(amount=True), _change(amount=-5),
        {k: v for k, v in _change().items() if k != "amount"}, _change(extra_field=1),
        _change(description="a\u0000b"), _change(metadata={"x": "y" * 5000}),
        _change(metadata={"n": 2**80}), _change(currency="nope"), _change(user="bad user"),
        [], "text", None,
    ]
    for i, bad in enumerate(bads):
        await send("POST", CREDIT, body=bad if bad is not None else {}, headers=svc(f"x{i}"))
    for i, raw in enumerate([b"{", b"", b'{"amount": 1e400}', b"\xff\xfe",
                             b'{"user_id": "u1", "user_id": "u2"}', b'"\\ud800"',
                             json.dumps(_change()).encode() + b" x"]):
        await send("POST", CREDIT, raw=raw,
                   headers={**svc(f"r{i}"), "Content-Type": "application/json"})
    dup = (b'{"user_id": "u9", "user_id": "u1", "currency": "points", "amount": 7, '
           b'"description": "d", "reference_id": "r"}')
    await send("POST", CREDIT, raw=dup, headers={**svc("dup"), "Content-Type": "application/json"})
    await send("POST", CREDIT, raw=json.dumps(_change()).encode(), headers=svc("ct1"))
    await send("POST", CREDIT, raw=json.dumps(_change()).encode(),
               headers={**svc("ct2"), "Content-Type": "text/plain"})
    await send("POST", CREDIT, raw=json.dumps(_change(amount=3)).encode(),
               headers={**svc("ct3"), "Content-Type": "application/json; charset=utf-8"})
    await send("POST", CREDIT, body=_change(), headers=svc(None))  # no Idempotency-Key
    await send("POST", CREDIT, body=_change(), headers=svc("k" * 300))
    await send("POST", CREDIT, body=_change(), headers={"Idempotency-Key": "n1"})  # no key
    await send("POST", CREDIT, body=_change(amount="x"), headers={"Idempotency-Key": "n2"})
    await send("POST", CREDIT, body=_change(), headers=svc("w1", k="cp_wrong"))
    await send("POST", CREDIT, body=_change(), headers=svc("s1", **{"X-Service-Name": "other"}))
    await send("POST", CREDIT, body=_change(),
               headers=svc("s2", **{"X-Service-Name": "x" * 200}))
    await send("POST", CREDIT, body=_change(), headers=svc("s3", **{"X-Service-Name": "games"}))
    await send("POST", CREDIT, body=_change(), headers=svc("sc1", k=read_key))  # scope
    await send("POST", TRANSFERS, body=_transfer(), headers=svc("sc2", k=read_key))
    await send("POST", BATCH, body=batch, headers=svc("sc3", k=read_key))
    await send("POST", TRANSFERS, body={"postings": []}, headers=svc("e1"))
    await send("POST", BATCH, body={"transfers": []}, headers=svc("e2"))
    await send("POST", CREDIT + "?x=1", body=_change(amount=4), headers=svc("q1"))
    # Reads.
    for path in ["/internal/v1/wallet/balance/u1", "/internal/v1/wallet/balance/nobody",
                 "/internal/v1/wallet/balance/bad%20id",
                 "/internal/v1/wallet/transactions/u1",
                 "/internal/v1/wallet/transactions/u1?limit=2",
                 "/internal/v1/wallet/transactions/u1?limit=0",
                 "/internal/v1/wallet/transactions/u1?limit=101",
                 "/internal/v1/wallet/transactions/u1?limit=2&limit=3",
                 "/internal/v1/wallet/transactions/u1?currency=usdt",
                 "/internal/v1/wallet/transactions/u1?currency=nope",
                 "/internal/v1/wallet/transactions/u1?cursor=bad",
                 "/internal/v1/wallet/transactions/u1?other=1"]:
        await send("GET", path, headers=svc())
        await send("GET", path, headers=svc(k=read_key))
    await send("GET", "/internal/v1/wallet/balance/u1", headers={})
    await send("GET", "/internal/v1/wallet/balance/u1", headers=svc(k="cp_wrong"))
    page = await client.get("/api/v1/wallet/transactions?limit=2", headers=auth(token))
    cursor = page.json()["next_cursor"]
    assert cursor
    for path in ["/api/v1/wallet/balance", "/api/v1/wallet/transactions",
                 "/api/v1/wallet/transactions?limit=2", f"/api/v1/wallet/transactions?limit=2"
                 f"&cursor={cursor}", "/api/v1/wallet/transactions?limit=abc",
                 "/api/v1/wallet/transactions?limit=100",
                 "/api/v1/wallet/transactions?currency=points&limit=1",
                 "/api/v1/wallet/transactions?currency=zzz"]:
        await send("GET", path, headers=auth(token))
        await send("GET", path, headers=auth("not-a-jwt"))
        await send("GET", path, headers={"Authorization": f"Basic {token}"})
        await send("GET", path)
    await send("GET", "/api/v1/wallet/balance",
               headers=auth(user_token("u2", exp=1)))  # expired
    return answers


async def _make_keys(url: str) -> tuple[str, str]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            _, key = await keys.create_key(conn, "games", "*")
            _, read_key = await keys.create_key(conn, "games", "wallet:read")
    finally:
        await engine.dispose()
    return key, read_key


async def _run(url: str, fast: bool) -> list[Answer]:
    key, read_key = await _make_keys(url)
    settings = Settings(database_url=url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                        currencies="points:0,usdt:2,diamonds:0", fast_path=fast)
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await _scenario(client, key, read_key)


def _masked(answers: list[Answer]) -> list[Answer]:
    return [(status, [(k, _VOLATILE.sub(b"<v>", v.encode()).decode()) for k, v in headers],
             _VOLATILE.sub(b"<v>", body)) for status, headers, body in answers]


@pytest.fixture
def fresh_db(db_url: str, tmp_path: Path) -> Callable[[], Awaitable[str]]:
    """A new empty database for each run: a copy of the SQLite file made before the first,
    or the PostgreSQL database emptied again."""
    copies = 0
    template = tmp_path / "template.db"
    if db_url.startswith("sqlite"):
        shutil.copy(db_url.removeprefix("sqlite:///"), template)

    async def make() -> str:
        nonlocal copies
        copies += 1
        if db_url.startswith("sqlite"):
            path = tmp_path / f"run{copies}.db"
            shutil.copy(template, path)
            return f"sqlite:///{path}"
        if copies > 1:
            await asyncio.to_thread(_truncate, db_url)  # it runs its own event loop
        return db_url

    return make


async def test_fast_path_answers_like_fastapi(fresh_db: Callable[[], Awaitable[str]]) -> None:
    before = dict(fastpath.counts)
    fast = await _run(await fresh_db(), fast=True)
    served = fastpath.counts["served"] - before["served"]
    handed_on = fastpath.counts["handed_on"] - before["handed_on"]
    slow_before = dict(fastpath.counts)
    slow = await _run(await fresh_db(), fast=False)
    assert fastpath.counts == slow_before  # the app without the fast path never enters it
    assert len(fast) == len(slow)
    for i, (a, b) in enumerate(zip(_masked(fast), _masked(slow), strict=True)):
        assert a == b, f"request {i}: fast path {a!r} != FastAPI {b!r}"
    # Both paths were exercised: most requests served fast, the odd ones handed on.
    assert served > 60, served
    assert handed_on > 30, (served, handed_on)
    statuses = {status for status, _, _ in fast}
    assert {200, 201, 401, 403, 422}.issubset(statuses), statuses
    assert any(dict(h).get("idempotent-replayed") == "true" for _, h, _ in fast)


async def test_fast_routes_shadow_their_fastapi_routes() -> None:
    """create_app checks every fast route against the route the router would pick; a route
    whose dependencies differ from what the fast path resolves is refused at start-up."""
    from fastapi import FastAPI

    from coinpurse.wallets import routes

    app = FastAPI()
    app.include_router(routes.router)
    app.include_router(routes.user_router)
    fastpath.check_routes(app, routes.fast_routes)

    async def other(body: int, state: int) -> Any:  # not the endpoint the router has
        raise AssertionError

    stale = fastpath.FastRoute.of("POST", "/internal/v1/wallet/credit", other)
    with pytest.raises(RuntimeError, match="the router picks"):
        fastpath.check_routes(app, [stale])


async def test_fast_path_requests_are_observed_like_fastapi_ones(db_url: str) -> None:
    """ops' middleware (outside the fast path) names the route template in the metrics and
    the access line, from the scope the fast path fills as the router would."""
    from prometheus_client import REGISTRY

    def count(method: str, route: str, status: str) -> float:
        return REGISTRY.get_sample_value("coinpurse_http_request_duration_seconds_count",
                                         {"method": method, "route": route,
                                          "status": status}) or 0.0

    balance_route = "/internal/v1/wallet/balance/{user_id}"
    before = (count("POST", CREDIT, "201"), count("GET", balance_route, "200"),
              fastpath.counts["served"])
    key, _ = await _make_keys(db_url)
    settings = Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                        currencies="points:0,usdt:2,diamonds:0")
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.post(CREDIT, json=_change(), headers={
                "X-API-Key": key, "Idempotency-Key": "obs-1", "X-Request-ID": "obs-req-1"})
            assert r.status_code == 201, r.text
            assert r.headers["x-request-id"] == "obs-req-1"
            r = await client.get("/internal/v1/wallet/balance/u1", headers={"X-API-Key": key})
            assert r.status_code == 200, r.text
    assert fastpath.counts["served"] == before[2] + 2
    assert count("POST", CREDIT, "201") == before[0] + 1
    assert count("GET", balance_route, "200") == before[1] + 1
