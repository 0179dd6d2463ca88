"""The canonical form of a sealed transaction, and its hash. Pure: no database.

A seal's hash is ``SHA-256(canonical bytes)`` in lowercase hex, where the canonical bytes
are the UTF-8 JSON text of::

    {"entries": [...], "previous": <previous seal's hash, or 64 zeros>, "sequence": n,
     "transaction": {...}, "v": 1}

written as ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``:
keys sorted, no spaces, non-ASCII characters as themselves, integers in decimal. The
transaction holds every column of its ``transactions`` row (``metadata_json`` and
``postings_json`` as the stored text, absent values as ``null``, ``created_at`` as
``YYYY-MM-DDTHH:MM:SS.ffffffZ``); ``entries`` holds every entry of the transaction ordered
by ``id``, each with its account's address and currency. A transaction missing when it was
sealed is ``{"id": ..., "missing": true}`` with no entries. README "Integrity" has the same
definition for operators who want to recompute a hash with other tools.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

VERSION = 1
GENESIS_PREVIOUS = "0" * 64


@dataclass(frozen=True, slots=True)
class TxRow:
    """A ``transactions`` row as stored."""

    id: str
    kind: str
    description: str
    reference_id: str
    metadata_json: str
    postings_json: str
    initiator: str
    service: str | None
    internal_notes: str | None
    idempotency_key: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EntryRow:
    """An ``entries`` row with its account's address and currency."""

    id: int
    transaction_id: str
    account_id: int
    address: str
    currency: str
    posting_index: int
    amount: int
    balance_after: int
    created_at: datetime


_STAMPS: dict[datetime, str] = {}
_STAMPS_MAX = 4096


def timestamp(value: datetime) -> str:
    """Always six fractional digits and ``Z``: the same text from SQLite and PostgreSQL.
    Remembered: a batch's transaction and entries share one time."""
    found = _STAMPS.get(value)
    if found is None:
        if len(_STAMPS) >= _STAMPS_MAX:
            _STAMPS.clear()
        found = _STAMPS[value] = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return found


def _tx(tx: TxRow) -> dict[str, Any]:
    return {"id": tx.id, "kind": tx.kind, "description": tx.description,
            "reference_id": tx.reference_id, "metadata_json": tx.metadata_json,
            "postings_json": tx.postings_json, "initiator": tx.initiator,
            "service": tx.service, "internal_notes": tx.internal_notes,
            "idempotency_key": tx.idempotency_key, "created_at": timestamp(tx.created_at)}


def _entry(e: EntryRow) -> dict[str, Any]:
    return {"id": e.id, "account_id": e.account_id, "address": e.address,
            "currency": e.currency, "posting_index": e.posting_index, "amount": e.amount,
            "balance_after": e.balance_after, "created_at": timestamp(e.created_at)}


def canonical(sequence: int, previous: str, transaction_id: str, tx: TxRow | None,
              entries: Sequence[EntryRow]) -> bytes:
    """The bytes a seal hashes. ``tx`` None: the transaction was missing when sealed.

    orjson with sorted keys writes exactly what the documented ``json.dumps`` call writes
    (tests/reconcile/test_canonical.py holds it to that), several times faster."""
    body: dict[str, Any] = {
        "v": VERSION, "sequence": sequence, "previous": previous,
        "transaction": _tx(tx) if tx is not None else {"id": transaction_id, "missing": True},
        "entries": [_entry(e) for e in sorted(entries, key=lambda e: e.id)],
    }
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def seal_hash(sequence: int, previous: str, transaction_id: str, tx: TxRow | None,
              entries: Sequence[EntryRow]) -> str:
    return hashlib.sha256(canonical(sequence, previous, transaction_id, tx, entries)).hexdigest()
