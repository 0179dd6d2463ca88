"""The event log: written in the same commit as each change, read in one order with a
cursor, never skipping an event that committed late (PostgreSQL's commit-order problem)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.events import repository, service
from coinpurse.events.tables import events
from coinpurse.partitions import service as partitions
from tests.conftest import MakeKey, _truncate


def _h(key: str, idem: str | None = None) -> dict[str, str]:
    return {"X-API-Key": key, "Idempotency-Key": idem or uuid.uuid4().hex}


async def _credit(client: httpx.AsyncClient, key: str, user: str, amount: int,
                  idem: str | None = None) -> httpx.Response:
    return await client.post("/internal/v1/wallet/credit", headers=_h(key, idem), json={
        "user_id": user, "currency": "points", "amount": amount, "description": "fund",
        "reference_id": "fund"})


async def _all_events(client: httpx.AsyncClient, key: str, types: str | None = None,
                      limit: int = 100) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        if types:
            params["types"] = types
        r = await client.get("/internal/v1/events", headers={"X-API-Key": key}, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["data"]
        if not page["data"]:
            return out
        after = page["next_cursor"]


async def test_a_credit_writes_one_transaction_posted_event(
        client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    r = await _credit(client, key, "ev1", 70, idem="once")
    assert r.status_code == 201
    again = await _credit(client, key, "ev1", 70, idem="once")  # a replay posts nothing
    assert again.headers.get("Idempotent-Replayed") == "true"
    refused = await client.post("/internal/v1/wallet/debit", headers=_h(key), json={
        "user_id": "ev1", "currency": "points", "amount": 1000, "description": "d",
        "reference_id": "r"})
    assert refused.status_code == 422
    found = await _all_events(client, key)
    assert [e["type"] for e in found] == ["transaction.posted"]
    data = found[0]["data"]
    assert data["id"] == r.json()["id"] and data["kind"] == "credit"
    assert data["postings"] == [{"source": "service:games", "destination": "user:ev1",
                                 "amount": 70, "currency": "points"}]
    user = next(b for b in data["balances"] if b["address"] == "user:ev1")
    assert user == {"address": "user:ev1", "currency": "points", "balance": 70, "held": 0,
                    "available": 70, "version": 1}
    assert isinstance(found[0]["id"], str) and found[0]["created_at"].endswith("Z")


async def test_hold_operations_write_their_events(
        client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    assert (await _credit(client, key, "ev2", 100)).status_code == 201
    placed = await client.post("/internal/v1/holds", headers=_h(key), json={
        "user_id": "ev2", "currency": "points", "amount": 30, "description": "call",
        "reference_id": "c1"})
    assert placed.status_code == 201
    hold_id = placed.json()["id"]
    captured = await client.post(f"/internal/v1/holds/{hold_id}/capture", headers=_h(key),
                                 json={"amount": 20})
    assert captured.status_code == 200, captured.text
    second = await client.post("/internal/v1/holds", headers=_h(key), json={
        "user_id": "ev2", "currency": "points", "amount": 5, "description": "call",
        "reference_id": "c2"})
    voided = await client.post(f"/internal/v1/holds/{second.json()['id']}/void",
                               headers=_h(key))
    assert voided.status_code == 200
    found = await _all_events(client, key)
    assert [e["type"] for e in found] == [
        "transaction.posted", "hold.placed", "transaction.posted", "hold.captured",
        "hold.placed", "hold.voided"]
    assert found[3]["data"]["hold"]["captured_amount"] == 20
    assert found[3]["data"]["balance"]["held"] == 0
    versions = [e["data"]["balance"]["version"] for e in found if e["type"].startswith("hold")]
    assert versions == sorted(versions) and len(set(versions)) == 4


async def test_types_filter_and_cursor(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    for n in range(7):
        assert (await _credit(client, key, f"ev3-{n}", 1)).status_code == 201
    paged = await _all_events(client, key, limit=3)
    assert len(paged) == 7 and len({e["id"] for e in paged}) == 7
    assert [int(e["id"]) for e in paged] == sorted(int(e["id"]) for e in paged)
    assert len(await _all_events(client, key, types="transaction.*")) == 7
    assert len(await _all_events(client, key, types="transaction.posted,hold.*")) == 7
    assert await _all_events(client, key, types="hold.*") == []
    r = await client.get("/internal/v1/events", headers={"X-API-Key": key},
                         params={"limit": 2})
    last = r.json()["next_cursor"]
    tail = await client.get("/internal/v1/events", headers={"X-API-Key": key},
                            params={"after": last, "limit": 100})
    assert len(tail.json()["data"]) == 5
    empty = await client.get("/internal/v1/events", headers={"X-API-Key": key},
                             params={"after": paged and tail.json()["next_cursor"]})
    assert empty.json()["data"] == [] and empty.json()["next_cursor"] == \
        tail.json()["next_cursor"]


@pytest.mark.parametrize("params", [
    {"types": "topup.*.x"}, {"types": "DROP TABLE"}, {"types": ",".join(["a.b"] * 40)},
    {"after": "not-a-cursor"}, {"after": "ZTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"},
    {"limit": "0"}, {"limit": "1001"}, {"limit": "1.5"}, {"types": "\u0000"},
])
async def test_bad_queries_are_refused(client: httpx.AsyncClient, make_key: MakeKey,
                                       params: dict[str, str]) -> None:
    key = await make_key()
    r = await client.get("/internal/v1/events", headers={"X-API-Key": key}, params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


async def test_reading_needs_the_scope(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    narrow = await make_key(scopes="wallet:read")
    r = await client.get("/internal/v1/events", headers={"X-API-Key": narrow})
    assert r.status_code == 403 and r.json()["required_scope"] == "events:read"
    allowed = await make_key(scopes="events:read")
    assert (await client.get("/internal/v1/events",
                             headers={"X-API-Key": allowed})).status_code == 200
    assert (await client.get("/internal/v1/events")).status_code == 401


def test_an_event_that_commits_late_is_not_skipped(pg_url: str) -> None:
    """Writer A takes its transaction id first and commits last: a reader must not move its
    cursor past A's event while A may still commit. (PostgreSQL only: SQLite has one writer
    at a time, so its commit order is its id order.)"""
    _truncate(pg_url)

    async def run() -> None:
        db = create_engine(pg_url, pool_size=3)
        try:
            async with db.connect() as a, db.connect() as b:
                await a.begin()
                await service.emit(a, "test.first", {"n": 1})
                await b.begin()
                await service.emit(b, "test.second", {"n": 2})
                await b.commit()
                seen, cursor = await service.page(db, after=0, limit=10,
                                                  types=service.TypeFilter())
                assert seen == []  # A is still running: B's event waits behind it
                await a.commit()
            seen, cursor = await service.page(db, after=cursor, limit=10,
                                              types=service.TypeFilter())
            assert [e.type for e in seen] == ["test.first", "test.second"]
        finally:
            await db.dispose()

    asyncio.run(run())


async def test_old_events_are_purged(settings: Settings) -> None:
    db = create_engine(settings.database_url, pool_size=1)
    try:
        async with db.begin() as conn:
            await service.emit(conn, "test.old", {})
            await service.emit(conn, "test.new", {})
        old = datetime.now(UTC) - timedelta(days=31)
        async with db.begin() as conn:
            # PostgreSQL: the events of that month go to its partition (none on SQLite)
            await partitions.ensure(conn, now=old, ahead_months=0)
            await conn.execute(update(events).where(events.c.type == "test.old").values(
                created_at=old))
        assert await service.purge(db, retention_days=30) == 1
        async with db.connect() as conn:
            left = await repository.read(conn, after=0, limit=10)
        assert [e.type for e in left] == ["test.new"]
    finally:
        await db.dispose()


async def test_many_events_in_one_transaction_keep_their_order(settings: Settings) -> None:
    db = create_engine(settings.database_url, pool_size=1)
    try:
        async with db.begin() as conn:
            for n in range(5):
                await service.emit(conn, "test.n", {"n": n})
            await repository.append(conn, [repository.NewEvent("test.n", {"n": n})
                                           for n in range(5, 300)], datetime.now(UTC))
        async with db.connect() as conn:
            found = await repository.read(conn, after=0, limit=1000)
        assert [e.data["n"] for e in found] == list(range(300))
    finally:
        await db.dispose()


async def test_concurrent_writers_and_a_reader_agree_with_the_ledger(
        client: httpx.AsyncClient, make_key: MakeKey) -> None:
    """Credits from many tasks while a reader follows the cursor: it ends with exactly one
    event per transaction, each once."""
    key = await make_key()
    stop = asyncio.Event()
    seen: list[dict[str, Any]] = []
    expected: set[str] = set()  # every credit's id, once the writers are done

    def caught_up() -> bool:
        return expected <= {e["data"]["id"] for e in seen if e["type"] == "transaction.posted"}

    async def reader() -> None:
        after: str | None = None
        deadline = None
        while True:
            # Whether the writers were done before this read began: an empty page read
            # while the last of them were still committing does not mean the end. Nor does
            # one read while an older transaction (the sealer's pass, say) is still open:
            # events come into view only below the oldest running transaction, so the
            # reader goes on until it has caught up, for at most 15 s (then the assertion
            # below says what it missed).
            done = stop.is_set()
            if done and deadline is None:
                deadline = asyncio.get_running_loop().time() + 15
            params: dict[str, Any] = {"limit": 50, **({"after": after} if after else {})}
            r = await client.get("/internal/v1/events", headers={"X-API-Key": key},
                                 params=params)
            page = r.json()
            seen.extend(page["data"])
            after = page["next_cursor"]
            if done and not page["data"] and (
                    caught_up() or asyncio.get_running_loop().time() > (deadline or 0)):
                return
            await asyncio.sleep(0 if not done else 0.05)

    async def writer(w: int) -> list[str]:
        ids = []
        for n in range(15):
            r = await _credit(client, key, f"w{w}-{n % 3}", 1)
            assert r.status_code == 201
            ids.append(r.json()["id"])
        return ids

    reading = asyncio.create_task(reader())
    written = await asyncio.gather(*(writer(w) for w in range(8)))
    expected.update(i for ids in written for i in ids)
    stop.set()
    await reading
    posted = [e["data"]["id"] for e in seen if e["type"] == "transaction.posted"]
    assert sorted(posted) == sorted(i for ids in written for i in ids)
    assert len({e["id"] for e in seen}) == len(seen)
