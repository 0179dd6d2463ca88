"""The log and webhooks across real processes: a server killed with SIGKILL in the middle of
a delivery loses no event; concurrent writers in several processes and a cursor reader see
exactly the ledger's transactions."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from coinpurse.core.db import create_engine
from coinpurse.ledger.tables import transactions
from tests.conftest import MakeKey, Server, auth, user_token
from tests.events.receiver import Receiver

ADMIN = auth(user_token("ops-1", role="admin"))
FAST = {"COINPURSE_WEBHOOK_ALLOW_PRIVATE": "true", "COINPURSE_WEBHOOK_TIMEOUT_S": "2",
        "COINPURSE_WEBHOOK_LEASE_S": "3", "COINPURSE_WEBHOOK_BACKOFF_BASE_S": "0.1",
        "COINPURSE_WEBHOOK_BACKOFF_MAX_S": "0.5", "COINPURSE_LIVE_POLL_S": "0.2",
        "COINPURSE_RATE_LIMIT_IP": "off", "COINPURSE_RATE_LIMIT_USER": "off"}


def _wait(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_in_the_middle_of_a_delivery_loses_no_event(
        serve: Callable[..., Server], make_key: MakeKey) -> None:
    # The first request is held long enough to kill the server while it waits.
    receiver = Receiver(hang_s=lambda n: 30.0 if n == 0 else 0.0).start()
    try:
        key = asyncio.run(make_key())
        server = serve(**FAST)
        r = httpx.post(server.base_url + "/admin/v1/webhook-endpoints", headers=ADMIN,
                       json={"url": receiver.url, "events": ["transaction.posted"]})
        assert r.status_code == 201, r.text
        ids = []
        for n in range(3):
            c = httpx.post(server.base_url + "/internal/v1/wallet/credit", headers={
                "X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex}, json={
                "user_id": f"k{n}", "currency": "points", "amount": 5, "description": "d",
                "reference_id": "r"})
            assert c.status_code == 201
            ids.append(c.json()["id"])
        _wait(lambda: receiver.received, 15, "the first delivery to be in flight")
        server.kill()  # SIGKILL, mid-delivery: its leases are never released
        restarted = serve(**FAST)

        def delivered() -> set[str]:
            got = {x.event["data"]["id"] for x in receiver.delivered()}
            return got if got == set(ids) else set()

        _wait(delivered, 30, "every event delivered after the restart")

        def recorded() -> list[dict[str, Any]]:
            page = httpx.get(restarted.base_url + "/admin/v1/webhook-endpoints", headers=ADMIN)
            endpoint = page.json()["data"][0]["id"]
            found: list[dict[str, Any]] = httpx.get(
                f"{restarted.base_url}/admin/v1/webhook-endpoints/{endpoint}/deliveries",
                headers=ADMIN, params={"status": "delivered"}).json()["data"]
            return found if len(found) == 3 else []

        assert len(_wait(recorded, 15, "the deliveries recorded")) == 3
    finally:
        receiver.stop()


Seen = list[dict[str, Any]]


async def _write_and_read(base: str, key: str, writers: int,
                          each: int) -> tuple[list[str], Seen]:
    stop = asyncio.Event()
    seen: list[dict[str, Any]] = []

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async def reader() -> None:
            after: str | None = None
            while True:
                done = stop.is_set()  # set before this read began: an empty page is the end
                params: dict[str, Any] = {"limit": 200, "types": "transaction.posted"}
                if after:
                    params["after"] = after
                r = await client.get("/internal/v1/events", headers={"X-API-Key": key},
                                     params=params)
                page = r.json()
                seen.extend(page["data"])
                after = page["next_cursor"]
                if done and not page["data"]:
                    return
                await asyncio.sleep(0.02)

        async def writer(w: int) -> list[str]:
            out = []
            for n in range(each):
                r = await client.post("/internal/v1/wallet/credit", headers={
                    "X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex}, json={
                    "user_id": f"cw{w}-{n % 4}", "currency": "points", "amount": 1,
                    "description": "d", "reference_id": "r"})
                assert r.status_code == 201, r.text
                out.append(r.json()["id"])
            return out

        reading = asyncio.create_task(reader())
        written = await asyncio.gather(*(writer(w) for w in range(writers)))
        await asyncio.sleep(0.5)  # the last commits pass the horizon
        stop.set()
        await reading
    return [i for ids in written for i in ids], seen


def test_writers_in_several_processes_and_a_cursor_reader_match_the_ledger(
        pg_url: str) -> None:
    from tests.conftest import _truncate

    _truncate(pg_url)

    async def key_and_count() -> str:
        from coinpurse.auth import keys

        engine = create_engine(pg_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                _, secret = await keys.create_key(conn, "games", "*")
        finally:
            await engine.dispose()
        return secret

    key = asyncio.run(key_and_count())
    server = Server(pg_url, workers=2, extra_env=FAST)
    try:
        written, seen = asyncio.run(_write_and_read(server.base_url, key, 12, 25))
    finally:
        server.stop()

    async def ledger_count() -> int:
        engine = create_engine(pg_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(select(func.count()).select_from(
                    transactions))).scalar_one())
        finally:
            await engine.dispose()

    posted = [e["data"]["id"] for e in seen]
    assert len(posted) == len(set(posted)) == len(written) == 300  # each once, no gap
    assert set(posted) == set(written)
    assert asyncio.run(ledger_count()) == 300
    assert [int(e["id"]) for e in seen] == sorted(int(e["id"]) for e in seen)
