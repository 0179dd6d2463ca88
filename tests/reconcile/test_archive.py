"""Archived months (PostgreSQL, coinpurse.partitions): once an old month of the history is
detached, reconciliation and verification count the archive's per-account totals and the
seals of the archived transactions, and still find what is wrong in what is left."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.partitions import repository as parts
from coinpurse.partitions import service as partitions
from tests.reconcile.conftest import Book, found, query, run, seal, tamper

OLD = date(2025, 1, 1)
WHEN = datetime(2025, 1, 20, tzinfo=UTC)


async def _ddl(url: str, *statements: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
async def archived(book: Book, settings: Settings) -> AsyncIterator[str]:
    """The book with its first transaction (alice's credit of 1000) dated in an old month,
    sealed, reconciled clean, then that month detached; yields the transaction's id. The
    detached tables are dropped afterwards (the database is shared by the tests)."""
    url = settings.database_url
    olds = [parts.partition_name(t, OLD) for t in partitions.HISTORY_TABLES]
    try:
        await _ddl(url, *(s for t in partitions.HISTORY_TABLES
                          for s in parts.partition_sql(t, OLD)))
        (first,) = await query(url, "SELECT e.transaction_id FROM entries e JOIN accounts a "
                                    "ON a.id = e.account_id WHERE a.address = 'user:alice' "
                                    "ORDER BY e.id LIMIT 1")
        tx_id = first.transaction_id
        await tamper(url,  # as if the ledger had written it in January 2025
                     ("UPDATE transactions SET created_at = :w WHERE id = :t",
                      {"w": WHEN, "t": tx_id}),
                     ("UPDATE entries SET created_at = :w WHERE transaction_id = :t",
                      {"w": WHEN, "t": tx_id}))
        await seal(settings)
        clean = await run(settings, "ledger", "full")
        assert clean.run.status == "passed", clean.discrepancies
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                detached = await partitions.detach_before(conn, partitions.month_of(
                    datetime.now(UTC)))
        finally:
            await engine.dispose()
        assert detached == olds
        yield tx_id
    finally:
        await _ddl(url, *(f"DROP TABLE IF EXISTS {name}" for name in olds))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_an_archived_month_still_reconciles(archived: str, settings: Settings) -> None:
    url = settings.database_url
    totals = await query(url, "SELECT a.address, t.total FROM archived_entry_totals t "
                              "JOIN accounts a ON a.id = t.account_id ORDER BY a.address")
    assert [(t.address, t.total) for t in totals][-1] == ("user:alice", 1000)
    incremental = await run(settings)
    assert incremental.run.status == "passed", incremental.discrepancies
    assert incremental.run.scope["archived_before"].startswith("2025-02-01T00:00:00")
    full = await run(settings, "ledger", "full")
    assert full.run.status == "passed", full.discrepancies
    assert full.run.counts["archived_seals"] == 1 and full.run.counts["transactions"] == 4
    chain = await run(settings, "chain", "full")
    assert chain.run.status == "passed", chain.discrepancies


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_tampering_after_an_archive_is_still_found(archived: str,
                                                         settings: Settings) -> None:
    url = settings.database_url
    (bob,) = await query(url, "SELECT e.id, e.transaction_id FROM entries e JOIN accounts a "
                              "ON a.id = e.account_id WHERE a.address = 'user:bob' "
                              "ORDER BY e.id LIMIT 1")
    await tamper(url, ("DELETE FROM entries WHERE id = :e", {"e": bob.id}),
                 ("DELETE FROM archived_entry_totals WHERE account_id = (SELECT id FROM "
                  "accounts WHERE address = 'user:alice' AND currency = 'points')", {}))
    detail = await run(settings)  # incremental: the counts reveal both
    assert detail.run.status == "failed"
    (deleted,) = found(detail, "entry_deleted")
    assert deleted.subject == bob.transaction_id
    (archive,) = found(detail, "archived_totals_mismatch")
    assert (archive.expected, archive.actual) == (2, 1)
    # The archived transaction's seal is not mistaken for a deleted transaction.
    assert not found(detail, "transaction_deleted")
    full = await run(settings, "ledger", "full")
    wrong = [d.subject for d in found(full, "balance_not_sum_of_entries")]
    assert "user:alice (points)" in wrong and "user:bob (points)" in wrong
    assert found(full, "archived_totals_mismatch") and not found(full, "transaction_deleted")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_an_edited_archived_seal_breaks_the_chain(archived: str,
                                                        settings: Settings) -> None:
    url = settings.database_url
    await tamper(url, ("UPDATE ledger_seals SET hash = :h WHERE sequence = 1", {"h": "0" * 64}))
    detail = await run(settings, "chain", "full")
    (brk,) = found(detail, "seal_out_of_order")
    assert brk.subject == "2"
