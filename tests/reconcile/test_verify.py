"""The hash chain, on SQLite and PostgreSQL: verification recomputes every seal from the
tables and reports the first break, an edited amount, a deleted row, an inserted row, a
reordered row, with the row named; an exported head proves history before it."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.reconcile import repository
from coinpurse.reconcile.canonical import seal_hash
from coinpurse.reconcile.service import Anchor
from tests.reconcile.conftest import Book, found, query, run, seal, tamper


def chain_breaks(detail: Any) -> list[Any]:
    return [d for d in detail.discrepancies if d.check != "transaction_unsealed"]


async def seals(url: str) -> list[Any]:
    return await query(url, "SELECT sequence, transaction_id, hash, previous_hash "
                            "FROM ledger_seals ORDER BY sequence")


async def entries_of_tx(url: str, tx_id: str) -> list[Any]:
    return await query(url, "SELECT e.id, e.amount, a.address FROM entries e JOIN accounts a "
                            "ON a.id = e.account_id WHERE e.transaction_id = :t ORDER BY e.id",
                       {"t": tx_id})


async def test_an_intact_chain_verifies_incrementally(book: Book, settings: Settings) -> None:
    await seal(settings)
    first = await run(settings, "chain")
    assert first.run.status == "passed" and first.run.mode == "full"
    assert first.run.counts["seals"] == 5
    chain = await seals(settings.database_url)
    assert first.run.scope["through"] == {"seal_sequence": 5, "seal_hash": chain[-1].hash,
                                          "at": first.run.scope["through"]["at"]}
    assert [s.sequence for s in chain] == [1, 2, 3, 4, 5]
    assert all(s.previous_hash == p.hash for p, s in itertools.pairwise(chain))
    await book.credit("erin", 1)
    await seal(settings)
    second = await run(settings, "chain")
    assert second.run.status == "passed" and second.run.mode == "incremental"
    assert second.run.counts["seals"] == 1  # only the new seal


async def test_an_edited_amount_is_the_first_break(book: Book, settings: Settings) -> None:
    await seal(settings)
    chain = await seals(settings.database_url)
    third, fourth = chain[2], chain[3]
    e3 = (await entries_of_tx(settings.database_url, third.transaction_id))[1]
    e4 = (await entries_of_tx(settings.database_url, fourth.transaction_id))[0]
    await tamper(settings.database_url,
                 ("UPDATE entries SET amount = amount * 2 WHERE id IN (:a, :b)",
                  {"a": e3.id, "b": e4.id}))
    detail = await run(settings, "chain")
    assert detail.run.status == "failed"
    (brk,) = chain_breaks(detail)  # the first break only; the walk stops there
    assert brk.check == "entry_amount_changed" and brk.subject == str(e3.id)
    assert (brk.expected, brk.actual) == (e3.amount, e3.amount * 2)
    assert f"seal {third.sequence}" in brk.detail
    assert detail.run.counts["seals"] == 2  # verified before the break


async def test_a_deleted_transaction_is_found(book: Book, settings: Settings) -> None:
    await seal(settings)
    victim = (await seals(settings.database_url))[1].transaction_id
    await tamper(settings.database_url,
                 ("DELETE FROM entries WHERE transaction_id = :t", {"t": victim}),
                 ("DELETE FROM transactions WHERE id = :t", {"t": victim}))
    detail = await run(settings, "chain")
    (brk,) = chain_breaks(detail)
    assert brk.check == "transaction_deleted" and brk.subject == victim


async def test_an_inserted_entry_is_found(book: Book, settings: Settings) -> None:
    await seal(settings)
    target = (await seals(settings.database_url))[0].transaction_id
    (acc,) = await query(settings.database_url, "SELECT id FROM accounts WHERE "
                         "address = 'user:bob' AND currency = 'points'")
    await tamper(settings.database_url, (
        "INSERT INTO entries (transaction_id, account_id, posting_index, amount, "
        "balance_after, created_at) VALUES (:t, :a, 0, 500, 820, :at)",
        {"t": target, "a": acc.id, "at": datetime.now(UTC)}))
    detail = await run(settings, "chain")
    (brk,) = chain_breaks(detail)
    assert brk.check == "entry_inserted" and brk.subject == target
    assert (brk.expected, brk.actual) == (2, 3)


async def test_an_inserted_transaction_is_found(book: Book, settings: Settings) -> None:
    await seal(settings)
    forged = str(uuid.uuid4())
    await tamper(settings.database_url, (
        "INSERT INTO transactions (id, kind, description, reference_id, metadata_json, "
        "postings_json, initiator, created_at) VALUES (:id, 'credit', 'x', 'x', '{}', '[]', "
        "'admin:1', :at)", {"id": forged, "at": datetime.now(UTC) - timedelta(hours=2)}))
    detail = await run(settings, "chain")
    (unsealed,) = found(detail, "transaction_unsealed")
    assert unsealed.subject == forged
    # a transaction inserted just now is within the sealing lag: not yet a break
    await tamper(settings.database_url, (
        "INSERT INTO transactions (id, kind, description, reference_id, metadata_json, "
        "postings_json, initiator, created_at) VALUES (:id, 'credit', 'x', 'x', '{}', '[]', "
        "'admin:1', :at)", {"id": str(uuid.uuid4()), "at": datetime.now(UTC)}))
    again = await run(settings, "chain", mode="full")
    assert [d.subject for d in found(again, "transaction_unsealed")] == [forged]


async def test_reordered_entries_are_found(book: Book, settings: Settings) -> None:
    """Two entries of a transaction swap places (their ids): the history of both accounts
    is reordered."""
    await seal(settings)
    target = (await seals(settings.database_url))[2].transaction_id
    a, b = await entries_of_tx(settings.database_url, target)
    spare = 10**9
    await tamper(settings.database_url,
                 ("UPDATE entries SET id = :spare WHERE id = :a", {"spare": spare, "a": a.id}),
                 ("UPDATE entries SET id = :a WHERE id = :b", {"a": a.id, "b": b.id}),
                 ("UPDATE entries SET id = :b WHERE id = :spare", {"b": b.id, "spare": spare}))
    detail = await run(settings, "chain")
    (brk,) = chain_breaks(detail)
    assert brk.check == "entries_reordered" and brk.subject == target


async def test_reordered_seals_are_found(book: Book, settings: Settings) -> None:
    await seal(settings)
    chain = await seals(settings.database_url)
    spare = 10**9
    await tamper(settings.database_url,
                 ("UPDATE ledger_seals SET sequence = :s WHERE sequence = 2", {"s": spare}),
                 ("UPDATE ledger_seals SET sequence = 2 WHERE sequence = 3", {}),
                 ("UPDATE ledger_seals SET sequence = 3 WHERE sequence = :s", {"s": spare}))
    detail = await run(settings, "chain")
    (brk,) = chain_breaks(detail)
    assert brk.check == "seal_out_of_order" and brk.subject == "2"
    assert brk.expected == chain[0].hash


async def test_a_deleted_seal_is_found(book: Book, settings: Settings) -> None:
    await seal(settings)
    await tamper(settings.database_url, ("DELETE FROM ledger_seals WHERE sequence = 3", {}))
    detail = await run(settings, "chain")
    brk = chain_breaks(detail)[0]
    assert brk.check == "seal_missing" and brk.subject == "3"


async def test_a_rewritten_chain_is_caught_by_the_exported_head(book: Book,
                                                                 settings: Settings) -> None:
    """Someone changes an amount and recomputes every seal after it: the chain is
    consistent again, but no longer reaches the head exported before."""
    await seal(settings)
    clean = await run(settings, "chain")
    through = clean.run.scope["through"]
    anchor = Anchor(through["seal_sequence"], through["seal_hash"])
    victim = (await seals(settings.database_url))[1]
    entry = (await entries_of_tx(settings.database_url, victim.transaction_id))[1]
    await tamper(settings.database_url,
                 ("UPDATE entries SET amount = amount + 1 WHERE id = :e", {"e": entry.id}))
    await rewrite_seals(settings, start=victim.sequence)
    assert (await run(settings, "chain", mode="full")).run.status == "passed"
    caught = await run(settings, "chain", anchor=anchor)
    (brk,) = chain_breaks(caught)
    assert brk.check == "head_mismatch" and brk.subject == str(anchor.sequence)
    assert brk.expected == anchor.hash


async def rewrite_seals(settings: Settings, start: int) -> None:
    """What a forger with the code and full access would do: recompute the chain."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            chain = await repository.seals_after(conn, 0, 10**9, 10**6)
            txs = await repository.transactions_by_id(conn, [s.transaction_id for s in chain])
            ents = await repository.entries_of(conn, [s.transaction_id for s in chain])
    finally:
        await engine.dispose()
    updates: list[tuple[str, dict[str, Any]]] = []
    previous = chain[start - 2].hash if start > 1 else "0" * 64
    for s in chain[start - 1:]:
        digest = seal_hash(s.sequence, previous, s.transaction_id, txs[s.transaction_id],
                           ents[s.transaction_id])
        updates.append(("UPDATE ledger_seals SET hash = :h, previous_hash = :p "
                        "WHERE sequence = :s", {"h": digest, "p": previous, "s": s.sequence}))
        previous = digest
    await tamper(settings.database_url, *updates)


async def test_verification_can_start_after_archived_history(book: Book,
                                                             settings: Settings) -> None:
    await seal(settings)
    victim = (await seals(settings.database_url))[0].transaction_id
    await tamper(settings.database_url,  # seal 1's transaction archived (gone from here)
                 ("DELETE FROM entries WHERE transaction_id = :t", {"t": victim}),
                 ("DELETE FROM transactions WHERE id = :t", {"t": victim}))
    assert (await run(settings, "chain", mode="full")).run.status == "failed"
    later = await run(settings, "chain", from_sequence=2)
    assert later.run.status == "passed" and later.run.mode == "from_sequence"
    assert later.run.counts["seals"] == 4


async def test_starting_after_the_head_is_a_break(book: Book, settings: Settings) -> None:
    await seal(settings)
    detail = await run(settings, "chain", from_sequence=9)
    (brk,) = chain_breaks(detail)
    assert brk.check == "seal_missing" and brk.subject == "9" and "head is 5" in brk.detail
