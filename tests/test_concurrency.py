"""Concurrency, retries and crashes against a real ``coinpurse serve`` over HTTP.

On PostgreSQL the server runs several worker processes, so batches from different
processes race for the same accounts; on SQLite it runs one.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.invariants import assert_invariants, ledger_state_async

USERS = [f"u{i}" for i in range(20)]
CURRENCIES = ("points", "usdt")
CLIENTS = 50
LOAD_S = 4.0


def _workers(db_url: str) -> int:
    """Three processes on PostgreSQL; each also runs two committers (COINPURSE_COMMITTERS),
    so batches race inside a process as well as between processes."""
    return 1 if db_url.startswith("sqlite") else 3


async def _key(db_url: str) -> str:
    from coinpurse.auth import keys
    from coinpurse.core.db import create_engine

    engine = create_engine(db_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            _, secret = await keys.create_key(conn, "load", "*")
    finally:
        await engine.dispose()
    return secret



def random_request(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A random credit, debit or multi-posting transfer among the test users."""
    op = rng.choice(("credit", "debit", "debit", "transfer", "transfer"))
    currency = rng.choice(CURRENCIES)
    if op in ("credit", "debit"):
        return f"/internal/v1/wallet/{op}", {
            "user_id": rng.choice(USERS), "currency": currency,
            "amount": rng.randint(1, 300 if op == "debit" else 100),
            "description": op, "reference_id": uuid.uuid4().hex[:16],
        }
    a, b, c = rng.sample(USERS, 3)
    return "/internal/v1/transfers", {
        "postings": [
            {"source": f"user:{a}", "destination": f"user:{b}", "amount": rng.randint(1, 80),
             "currency": currency},
            {"source": f"user:{a}", "destination": f"user:{c}", "amount": rng.randint(1, 20),
             "currency": currency},
        ],
        "kind": "gift", "description": "gift", "reference_id": uuid.uuid4().hex[:16],
    }


async def _prime(http: httpx.AsyncClient, key: str) -> int:
    n = 0
    for user in USERS:
        for currency in CURRENCIES:
            r = await http.post("/internal/v1/wallet/credit", headers={
                "X-API-Key": key, "Idempotency-Key": f"prime-{user}-{currency}"},
                json={"user_id": user, "currency": currency, "amount": 500,
                      "description": "prime", "reference_id": "prime"})
            assert r.status_code == 201, r.text
            n += 1
    return n


@pytest.fixture
def server(serve: Callable[..., Server], db_url: str) -> Server:
    return serve(workers=_workers(db_url), COINPURSE_COMMITTERS="2")


async def test_random_load_keeps_every_invariant(server: Server, db_url: str) -> None:
    key = await _key(db_url)
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30) as http:
        primed = await _prime(http, key)
        accepted: list[str] = []
        refused = 0
        unexpected: list[str] = []
        deadline = time.monotonic() + LOAD_S

        async def client(seed: int) -> None:
            nonlocal refused
            rng = random.Random(seed)
            while time.monotonic() < deadline:
                path, body = random_request(rng)
                r = await http.post(path, json=body, headers={
                    "X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex})
                if r.status_code == 201:
                    assert r.headers.get("idempotent-replayed") is None
                    accepted.append(r.json()["id"])
                elif r.status_code == 422 and r.json()["code"] == "insufficient_funds":
                    refused += 1
                else:
                    unexpected.append(f"{r.status_code} {r.text}")

        await asyncio.gather(*(client(i) for i in range(CLIENTS)))

    assert unexpected == []
    assert len(accepted) > 100 and refused > 0, (len(accepted), refused)
    state = await ledger_state_async(db_url)
    assert_invariants(state)
    assert state["tx_count"] == primed + len(accepted)
    assert set(accepted) <= state["tx_ids"]
    assert len(set(accepted)) == len(accepted)


async def test_parallel_retries_make_one_transaction_each(server: Server, db_url: str) -> None:
    key = await _key(db_url)
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        primed = await _prime(http, key)
        requests = [random_request(rng) for _ in range(60)]

        async def send(i: int, path: str, body: dict[str, Any]) -> httpx.Response:
            return await http.post(path, json=body, headers={
                "X-API-Key": key, "Idempotency-Key": f"retry-{i}"})

        answers = await asyncio.gather(*(
            send(i, path, body) for i, (path, body) in enumerate(requests) for _ in range(3)
        ))
        # One more sequential retry of each: now always the original answer, replayed.
        replays = [await send(i, path, body) for i, (path, body) in enumerate(requests)]

    created = 0
    for i in range(len(requests)):
        trio = answers[3 * i: 3 * i + 3]
        firsts = [r for r in trio if r.status_code != 409]
        for r in trio:
            if r.status_code == 409:
                assert r.json()["code"] == "idempotency_key_in_use"
        assert firsts, "at least one of the three is the original answer"
        assert len({r.content for r in firsts}) == 1, "replays equal the original"
        assert len({r.status_code for r in firsts}) == 1
        original = firsts[0]
        assert original.status_code in (201, 422), original.text
        assert replays[i].status_code == original.status_code
        assert replays[i].content == original.content
        assert replays[i].headers["idempotent-replayed"] == "true"
        created += original.status_code == 201
    state = await ledger_state_async(db_url)
    assert_invariants(state)
    assert state["tx_count"] == primed + created


async def test_crash_mid_load_loses_nothing_acknowledged(
    serve: Callable[..., Server], db_url: str
) -> None:
    server = serve(workers=_workers(db_url), COINPURSE_COMMITTERS="2")
    key = await _key(db_url)
    rng = random.Random(11)
    sent: dict[str, tuple[str, dict[str, Any]]] = {}
    acked: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        await _prime(http, key)

        async def client() -> None:
            while True:
                path, body = random_request(rng)
                idem = uuid.uuid4().hex
                sent[idem] = (path, body)
                try:
                    r = await http.post(path, json=body, headers={
                        "X-API-Key": key, "Idempotency-Key": idem})
                except httpx.HTTPError:
                    return  # the server died under us
                if r.status_code == 201:
                    acked[idem] = r.json()["id"]

        tasks = [asyncio.create_task(client()) for _ in range(20)]
        await asyncio.sleep(1.5)
        await asyncio.to_thread(server.kill)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)

    state = await ledger_state_async(db_url)
    assert_invariants(state)
    assert set(acked.values()) <= state["tx_ids"], "an acknowledged transaction was lost"

    # Restart and retry everything with the same keys: nothing is applied twice.
    again = serve(workers=_workers(db_url), COINPURSE_COMMITTERS="2")
    created_total = 0
    async with httpx.AsyncClient(base_url=again.base_url, timeout=30) as http:
        for idem, (path, body) in sent.items():
            r = await http.post(path, json=body, headers={"X-API-Key": key,
                                                          "Idempotency-Key": idem})
            assert r.status_code in (201, 422), r.text
            if idem in acked:
                assert r.status_code == 201 and r.json()["id"] == acked[idem]
                assert r.headers["idempotent-replayed"] == "true"
            created_total += r.status_code == 201
    final = await ledger_state_async(db_url)
    assert_invariants(final)
    assert final["tx_count"] == len(USERS) * len(CURRENCIES) + created_total
