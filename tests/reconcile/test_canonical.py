"""The canonical form is what README "Integrity" says: an independent implementation of
that text, over rows read with plain SQL, gives the stored hashes on both databases."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from coinpurse.config import Settings
from coinpurse.reconcile.canonical import EntryRow, TxRow, canonical, seal_hash, timestamp
from tests.reconcile.conftest import Book, query, seal


def _utc_text(value: Any) -> str:
    if isinstance(value, str):  # SQLite: "YYYY-MM-DD HH:MM:SS[.ffffff]", UTC
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return str(value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


async def test_an_independent_implementation_gives_the_stored_hashes(
        book: Book, settings: Settings) -> None:
    await book.credit("zoe", 7, description="Prämie für Zoë ✓ \"quoted\"\n")  # UTF-8
    await seal(settings)
    url = settings.database_url
    seals = await query(url, "SELECT sequence, transaction_id, hash, previous_hash "
                             "FROM ledger_seals ORDER BY sequence")
    previous = "0" * 64
    for s in seals:
        (t,) = await query(url, "SELECT id, kind, description, reference_id, metadata_json, "
                                "postings_json, initiator, service, internal_notes, "
                                "idempotency_key, CAST(created_at AS TEXT) AS created_at "
                                "FROM transactions WHERE id = :id", {"id": s.transaction_id})
        rows = await query(url, "SELECT e.id, e.account_id, a.address, a.currency, "
                                "e.posting_index, e.amount, e.balance_after, "
                                "CAST(e.created_at AS TEXT) AS created_at FROM entries e "
                                "JOIN accounts a ON a.id = e.account_id "
                                "WHERE e.transaction_id = :id ORDER BY e.id",
                           {"id": s.transaction_id})
        document = {
            "v": 1, "sequence": s.sequence, "previous": previous,
            "transaction": {
                "id": t.id, "kind": t.kind, "description": t.description,
                "reference_id": t.reference_id, "metadata_json": t.metadata_json,
                "postings_json": t.postings_json, "initiator": t.initiator,
                "service": t.service, "internal_notes": t.internal_notes,
                "idempotency_key": t.idempotency_key,
                "created_at": _utc_text(_parse(t.created_at))},
            "entries": [{"id": e.id, "account_id": e.account_id, "address": e.address,
                         "currency": e.currency, "posting_index": e.posting_index,
                         "amount": e.amount, "balance_after": e.balance_after,
                         "created_at": _utc_text(_parse(e.created_at))} for e in rows],
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(text.encode("utf-8")).hexdigest() == s.hash, s.sequence
        assert s.previous_hash == previous
        previous = s.hash
    assert len(seals) == 6


def _parse(value: str) -> datetime:
    """A timestamp as the database prints it (PostgreSQL adds its zone, SQLite none)."""
    value = value.replace(" ", "T")
    if value.endswith("+00"):
        value += ":00"
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def test_the_form_is_stable() -> None:
    """Keys sorted, no spaces, integers exact, text unescaped, six fraction digits and Z."""
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    tx = TxRow("t1", "credit", "Prämie \"1\"", "r", "{}", '[{"amount":5}]', "service:x",
               None, None, "k", at)
    entry = EntryRow(9, "t1", 3, "user:a", "points", 0, 2**63 - 1, 2**63 - 1, at)
    data = canonical(2, "ab" * 32, "t1", tx, [entry])
    assert data == (
        '{"entries":[{"account_id":3,"address":"user:a","amount":9223372036854775807,'
        '"balance_after":9223372036854775807,"created_at":"2026-01-02T03:04:05.000000Z",'
        '"currency":"points","id":9,"posting_index":0}],"previous":"' + "ab" * 32 + '",'
        '"sequence":2,"transaction":{"created_at":"2026-01-02T03:04:05.000000Z",'
        '"description":"Prämie \\"1\\"","id":"t1","idempotency_key":"k","initiator":'
        '"service:x","internal_notes":null,"kind":"credit","metadata_json":"{}",'
        '"postings_json":"[{\\"amount\\":5}]","reference_id":"r","service":null},"v":1}'
    ).encode("utf-8")
    assert seal_hash(2, "ab" * 32, "t1", tx, [entry]) == hashlib.sha256(data).hexdigest()
    missing = canonical(3, "cd" * 32, "t2", None, [])
    assert json.loads(missing)["transaction"] == {"id": "t2", "missing": True}
    assert timestamp(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00.000000Z"
