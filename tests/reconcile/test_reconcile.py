"""Reconciliation of the books, on SQLite and PostgreSQL: a clean ledger passes, each kind of
tampering is found with the account or row named, runs are stored and incremental."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from coinpurse.config import Settings
from coinpurse.reconcile.service import Reconciler
from tests.conftest import auth, user_token
from tests.reconcile.conftest import Book, found, query, reconciler, run, seal, tamper


async def entry_of(url: str, address: str, currency: str = "points", newest: bool = True
                   ) -> Any:
    rows = await query(url, "SELECT e.id, e.transaction_id, e.amount, e.balance_after "
                            "FROM entries e JOIN accounts a ON a.id = e.account_id "
                            "WHERE a.address = :a AND a.currency = :c ORDER BY e.id",
                       {"a": address, "c": currency})
    return rows[-1] if newest else rows[0]


async def test_a_clean_ledger_passes(book: Book, settings: Settings) -> None:
    await seal(settings)
    detail = await run(settings, mode="full")
    assert detail.run.status == "passed", detail.discrepancies
    assert detail.discrepancies == [] and detail.run.discrepancy_count == 0
    counts = detail.run.counts
    # alice, bob, carol and service:games in points, alice and service:games in coins
    assert counts["accounts"] == 6 and counts["entries"] == 10
    assert counts["transactions"] == 5 and counts["seals"] == 5
    assert detail.run.scope["through"]["seal_sequence"] == 5
    assert detail.run.finished_at is not None and detail.run.trigger == "cli"


async def test_a_changed_balance_is_found(book: Book, settings: Settings,
                                          caplog: pytest.LogCaptureFixture) -> None:
    await seal(settings)
    await tamper(settings.database_url, (
        "UPDATE accounts SET balance = balance + 7 WHERE address = 'user:bob' "
        "AND currency = 'points'", {}))
    with caplog.at_level(logging.ERROR, logger="coinpurse.reconcile"):
        detail = await run(settings)
    assert detail.run.status == "failed"
    (by_sum,) = found(detail, "balance_not_sum_of_entries")
    assert by_sum.subject == "user:bob (points)"
    assert (by_sum.expected, by_sum.actual) == (320, 327)
    (last,) = found(detail, "last_balance_after_mismatch")
    assert last.subject == "user:bob (points)" and last.expected == 320
    (total,) = found(detail, "currency_sum_not_zero")
    assert total.subject == "points" and total.actual == 7
    # an error line names the run and what it found
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(detail.run.id in m and "balance_not_sum_of_entries" in m for m in lines)


async def test_a_changed_entry_amount_is_found(book: Book, settings: Settings) -> None:
    await seal(settings)
    entry = await entry_of(settings.database_url, "user:carol")
    await tamper(settings.database_url,
                 ("UPDATE entries SET amount = 300 WHERE id = :id", {"id": entry.id}))
    detail = await run(settings)
    assert detail.run.status == "failed"
    (jump,) = found(detail, "balance_after_jump")
    assert jump.subject == str(entry.id) and (jump.expected, jump.actual) == (300, 30)
    (mismatch,) = found(detail, "transaction_entries_mismatch")
    assert mismatch.subject == entry.transaction_id and str(entry.id) in mismatch.detail
    (unbalanced,) = found(detail, "unbalanced_transaction")
    assert unbalanced.subject == entry.transaction_id and unbalanced.actual == 270
    (chain,) = found(detail, "entry_amount_changed")
    assert chain.subject == str(entry.id) and (chain.expected, chain.actual) == (30, 300)


async def test_a_deleted_entry_is_found(book: Book, settings: Settings) -> None:
    await seal(settings)
    entry = await entry_of(settings.database_url, "user:alice", newest=False)
    await tamper(settings.database_url,
                 ("DELETE FROM entries WHERE id = :id", {"id": entry.id}))
    detail = await run(settings)
    assert detail.run.status == "failed"
    (mismatch,) = found(detail, "transaction_entries_mismatch")
    assert mismatch.subject == entry.transaction_id
    assert "no entry for posting 0 on user:alice (points) of 1000" in mismatch.detail
    (jump,) = found(detail, "balance_after_jump")  # alice's next entry no longer follows
    assert jump.expected == -100 and jump.actual == 900
    (chain,) = found(detail, "entry_deleted")
    assert chain.subject == entry.transaction_id and (chain.expected, chain.actual) == (2, 1)


async def test_a_transaction_inserted_without_entries_is_found(book: Book,
                                                               settings: Settings) -> None:
    await seal(settings)
    forged = str(uuid.uuid4())
    postings = orjson.dumps([{"source": "world", "destination": "user:mallory",
                              "amount": 1_000_000, "currency": "points"}]).decode()
    await tamper(settings.database_url, (
        "INSERT INTO transactions (id, kind, description, reference_id, metadata_json, "
        "postings_json, initiator, created_at) VALUES (:id, 'credit', 'gift', 'x', '{}', "
        ":p, 'service:games', :at)",
        {"id": forged, "p": postings, "at": datetime.now(UTC) - timedelta(hours=1)}))
    detail = await run(settings)
    assert detail.run.status == "failed"
    (unsealed,) = found(detail, "transaction_unsealed")
    assert unsealed.subject == forged and "not written by the ledger" in unsealed.detail
    (mismatch,) = found(detail, "transaction_entries_mismatch")
    assert mismatch.subject == forged and "user:mallory" in mismatch.detail


async def test_an_order_marked_paid_without_a_credit_is_found(
        client: httpx.AsyncClient, settings: Settings) -> None:
    r = await client.post("/api/v1/topups", json={"package_id": "small", "provider": "mock"},
                          headers={**auth(user_token("dave")), "Idempotency-Key": "t1"})
    assert r.status_code == 201, r.text
    order_id = r.json()["id"]
    assert (await run(settings)).run.status == "passed"
    await tamper(settings.database_url, (
        "UPDATE payment_orders SET status = 'succeeded' WHERE id = :id", {"id": order_id}))
    detail = await run(settings, mode="full")
    (unpaid,) = found(detail, "paid_order_without_credit")
    assert unpaid.subject == order_id and unpaid.subject_type == "payment_order"
    # an incremental run sees it too: a paid order that names no credit is always checked
    again = await run(settings)
    assert [d.subject for d in found(again, "paid_order_without_credit")] == [order_id]


async def test_a_changed_hold_total_is_found(book: Book, settings: Settings) -> None:
    await tamper(settings.database_url, (
        "UPDATE accounts SET held = 0 WHERE address = 'user:alice' AND currency = 'points'",
        {}))
    detail = await run(settings)
    (held,) = found(detail, "held_not_sum_of_holds")
    assert held.subject == "user:alice (points)" and (held.expected, held.actual) == (50, 0)


async def test_a_discrepancy_writes_an_event(book: Book, settings: Settings,
                                             client: httpx.AsyncClient,
                                             make_key: Any) -> None:
    await tamper(settings.database_url, (
        "UPDATE accounts SET balance = 1 WHERE address = 'user:carol'", {}))
    detail = await run(settings)
    key = await make_key("ops", "events:read")
    events: list[Any] = []
    for _ in range(100):  # readers see an event once no older transaction is still running
        r = await client.get("/internal/v1/events", headers={"X-API-Key": key},
                             params={"types": "reconciliation.failed"})
        if events := r.json()["data"]:
            break
        await asyncio.sleep(0.05)
    (event,) = events
    assert event["data"]["id"] == detail.run.id
    assert event["data"]["discrepancy_count"] == detail.run.discrepancy_count
    assert event["data"]["checks"]["balance_not_sum_of_entries"] == 1
    assert "user:carol (points)" in {d["subject"] for d in event["data"]["discrepancies"]}


async def test_runs_are_incremental(book: Book, settings: Settings) -> None:
    await seal(settings)
    first = await run(settings)
    assert first.run.mode == "full"  # no clean run before it
    assert first.run.counts["accounts"] == 6
    await book.credit("erin", 10)
    await seal(settings)
    second = await run(settings)
    assert second.run.status == "passed" and second.run.mode == "incremental"
    assert second.run.scope["since_run"] == first.run.id
    # only what changed: service:games and erin, one transaction, two entries
    assert second.run.counts["accounts"] == 2 and second.run.counts["entries"] == 2
    assert second.run.counts["transactions"] == 1 and second.run.counts["seals"] == 1
    third = await run(settings)
    assert third.run.counts.get("accounts", 0) == 0
    assert third.run.counts.get("transactions", 0) == 0
    full = await run(settings, mode="full")
    assert full.run.counts["accounts"] == 7 and full.run.counts["transactions"] == 6


async def test_a_discrepancy_is_reported_until_it_is_resolved(book: Book,
                                                              settings: Settings) -> None:
    await seal(settings)
    assert (await run(settings)).run.status == "passed"
    await tamper(settings.database_url, (
        "UPDATE accounts SET balance = balance - 1 WHERE address = 'user:bob'", {}))
    for _ in range(2):  # a failed run moves no mark: the next one checks bob again
        detail = await run(settings)
        assert [d.subject for d in found(detail, "balance_not_sum_of_entries")] == [
            "user:bob (points)"]
    await tamper(settings.database_url, (
        "UPDATE accounts SET balance = balance + 1 WHERE address = 'user:bob'", {}))
    assert (await run(settings)).run.status == "passed"


async def test_an_old_row_deleted_is_found_by_an_incremental_run(book: Book,
                                                                   settings: Settings) -> None:
    """Counts reveal a deleted or inserted row anywhere; the run then names it."""
    await seal(settings)
    assert (await run(settings)).run.status == "passed"
    entry = await entry_of(settings.database_url, "user:bob", newest=False)
    await tamper(settings.database_url,
                 ("DELETE FROM entries WHERE id = :id", {"id": entry.id}))
    detail = await run(settings)
    assert detail.run.mode == "incremental"
    (deleted,) = found(detail, "entry_deleted")
    assert deleted.subject == entry.transaction_id


async def test_a_withdrawal_without_its_capture_is_found(
        client: httpx.AsyncClient, book: Book, settings: Settings) -> None:
    from tests.payments.conftest import ADMIN, headers, set_tier

    await book.credit("wendy", 500, "diamonds")
    await set_tier(settings, "wendy", 1)
    r = await client.post("/api/v1/withdrawals", headers=headers("wendy"), json={
        "currency": "diamonds", "amount": 100, "destination": {"iban": "X"}})
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    r = await client.post(f"/admin/v1/withdrawals/{wid}/approve", headers=ADMIN)
    assert r.status_code == 200, r.text
    await seal(settings)
    assert (await run(settings)).run.status == "passed"
    await tamper(settings.database_url, (
        "UPDATE withdrawals SET transaction_id = NULL, updated_at = :at WHERE id = :id",
        {"id": wid, "at": datetime.now(UTC)}))
    detail = await run(settings)
    (missing,) = found(detail, "withdrawal_without_capture")
    assert missing.subject == wid and missing.expected == 100


async def test_one_run_of_a_kind_at_a_time(settings: Settings) -> None:
    async with reconciler(settings) as rec:
        first = await rec.start("ledger", mode="incremental", trigger="cli")
        assert first is not None
        assert await rec.start("ledger", mode="full", trigger="cli") is None
        chain = await rec.start("chain", mode="incremental", trigger="cli")
        assert chain is not None  # another kind may run meanwhile
        await rec.execute(first)
        assert await rec.start("ledger", mode="full", trigger="cli") is not None


async def test_a_run_whose_process_died_is_abandoned(settings: Settings) -> None:
    async with reconciler(settings) as rec:
        stuck = await rec.start("ledger", mode="incremental", trigger="cli")
        assert stuck is not None
        await tamper(settings.database_url, (
            "UPDATE reconciliations SET heartbeat_at = :at WHERE id = :id",
            {"id": stuck.id, "at": datetime.now(UTC) - timedelta(minutes=10)}))
        fresh = await rec.start("ledger", mode="incremental", trigger="cli")
        assert fresh is not None
        gone = (await rec.get(stuck.id)).run
        assert gone.status == "error" and "abandoned" in (gone.error or "")


def reconciler_of(app: Any) -> Reconciler:
    state = app.state.coinpurse
    return Reconciler(state.db, state.settings, state.settings)
