"""The sealer, on SQLite and PostgreSQL: seals follow the transaction.posted events, once
each, in one order, with several sealers at once; history older than the events is sealed
first (the genesis)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.ledger.idempotency import StoredResponse
from coinpurse.ledger.model import Outcome, Posting, TransactionSpec
from coinpurse.ledger.service import Ledger
from coinpurse.reconcile.canonical import GENESIS_PREVIOUS
from coinpurse.reconcile.sealer import Sealer
from tests.conftest import MakeKey
from tests.reconcile.conftest import Book, found, query, run, seal, tamper


async def posted_order(url: str) -> list[str]:
    """Transaction ids in the order of their transaction.posted events."""
    import orjson

    rows = await query(url, "SELECT data_json FROM events WHERE type = 'transaction.posted' "
                            "ORDER BY id")
    return [orjson.loads(r.data_json)["id"] for r in rows]


async def test_seals_follow_the_events(book: Book, settings: Settings) -> None:
    assert await seal(settings) == 5
    assert await seal(settings) == 0  # nothing new
    rows = await query(settings.database_url, "SELECT sequence, transaction_id, "
                       "previous_hash, hash, event_id, entry_count FROM ledger_seals "
                       "ORDER BY sequence")
    assert [r.transaction_id for r in rows] == await posted_order(settings.database_url)
    assert rows[0].previous_hash == GENESIS_PREVIOUS
    assert all(r.event_id is not None and r.entry_count == 2 for r in rows)
    assert [r.event_id for r in rows] == sorted(r.event_id for r in rows)


async def test_several_sealers_seal_each_transaction_once(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    b = Book(client, await make_key("games", "*"))
    engines = [create_engine(settings.database_url, pool_size=2) for _ in range(3)]
    sealers = [Sealer(e) for e in engines]
    stop = asyncio.Event()

    async def keep_sealing(s: Sealer) -> None:
        while not stop.is_set():
            await s.seal_pending()
            await asyncio.sleep(0)

    try:
        tasks = [asyncio.create_task(keep_sealing(s)) for s in sealers]
        for i in range(40):
            await b.credit(f"u{i % 7}", 1 + i)
        stop.set()
        await asyncio.gather(*tasks)
        await sealers[0].seal_pending()
    finally:
        for e in engines:
            await e.dispose()
    rows = await query(settings.database_url,
                       "SELECT sequence, transaction_id FROM ledger_seals ORDER BY sequence")
    assert [r.sequence for r in rows] == list(range(1, 41))
    assert [r.transaction_id for r in rows] == await posted_order(settings.database_url)
    assert (await run(settings, "chain", mode="full")).run.status == "passed"


async def test_history_older_than_the_events_is_sealed_first(
        book: Book, settings: Settings) -> None:
    """Transactions without an event (written before the event log, or whose events were
    deleted after their retention) are sealed first, in the order they were created."""
    engine = create_engine(settings.database_url, pool_size=2)
    ledger = Ledger(engine, may_go_negative=settings.may_go_negative, idempotency_ttl_s=60)
    await ledger.start()

    def render(_outcomes: list[Outcome]) -> StoredResponse:
        return StoredResponse(200, b"{}")

    try:
        for n in (1, 2):  # no outbox hook: these write no event, like an old ledger
            await ledger.submit([TransactionSpec(
                kind="credit", postings=(Posting("service:old", f"user:old{n}", n, "points"),),
                description="old", reference_id=f"old-{n}", initiator="service:old")],
                render=render)
    finally:
        await ledger.stop()
        await engine.dispose()
    # the book's events are older than these two: only events older than the oldest kept
    # are history; delete the book's events, as the retention would have
    await tamper(settings.database_url, ("DELETE FROM events", {}))
    assert await seal(settings) == 7
    rows = await query(settings.database_url, "SELECT s.event_id, t.created_at FROM "
                       "ledger_seals s JOIN transactions t ON t.id = s.transaction_id "
                       "ORDER BY s.sequence")
    assert all(r.event_id is None for r in rows)
    assert [r.created_at for r in rows] == sorted(r.created_at for r in rows)
    await book.credit("new", 3)
    assert await seal(settings) == 1
    assert (await run(settings, "ledger", mode="full")).run.status == "passed"


async def test_an_event_seen_after_the_genesis_is_not_sealed_twice(
        book: Book, settings: Settings) -> None:
    """The genesis takes every transaction created before the oldest readable event; a
    transaction of that time whose event shows up later is already sealed."""
    oldest = await query(settings.database_url,
                         "SELECT id FROM events WHERE type = 'transaction.posted' ORDER BY id")
    await tamper(settings.database_url,  # as if the first events were not readable yet
                 ("UPDATE events SET type = 'held.back' WHERE id IN (:a, :b)",
                  {"a": oldest[0].id, "b": oldest[1].id}))
    assert await seal(settings) == 5  # every transaction sealed: the genesis took all five
    await tamper(settings.database_url,
                 ("UPDATE events SET type = 'transaction.posted' WHERE type = 'held.back'", {}))
    await tamper(settings.database_url,  # the cursor back before them, as if not yet read
                 ("UPDATE event_cursors SET after_id = 0 WHERE name = 'ledger-sealer'", {}))
    assert await seal(settings) == 0
    count = await query(settings.database_url, "SELECT COUNT(*) AS n FROM ledger_seals")
    assert count[0].n == 5


async def test_a_transaction_gone_before_sealing_stays_a_break(
        book: Book, settings: Settings) -> None:
    await seal(settings)
    await book.credit("zed", 9)
    victim = (await posted_order(settings.database_url))[-1]
    await tamper(settings.database_url,
                 ("DELETE FROM entries WHERE transaction_id = :t", {"t": victim}),
                 ("DELETE FROM transactions WHERE id = :t", {"t": victim}))
    assert await seal(settings) == 1  # sealed as missing
    detail = await run(settings, "chain", mode="full")
    (gone,) = found(detail, "transaction_deleted")
    assert gone.subject == victim


async def test_the_job_runs_in_serve(settings: Settings, make_key: MakeKey, serve: Any) -> None:
    """serve seals in the background (COINPURSE_SEAL_INTERVAL_S)."""
    server = serve(COINPURSE_SEAL_INTERVAL_S="0.2")
    key = await make_key("games", "*")
    async with httpx.AsyncClient(base_url=server.base_url) as c:
        b = Book(c, key)
        await b.credit("amy", 5, "points")
        await b.credit("amy", 6, "points")
    for _ in range(100):
        rows = await query(settings.database_url, "SELECT COUNT(*) AS n FROM ledger_seals")
        if rows[0].n == 2:
            break
        await asyncio.sleep(0.1)
    assert rows[0].n == 2
