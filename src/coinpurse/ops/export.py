"""``coinpurse export``: transactions or entries, oldest first, as CSV or JSON Lines.

Rows are read in chunks by keyset (never an OFFSET, never the whole table in memory) in one
read transaction, so the file is one consistent snapshot on PostgreSQL; each line is written
as soon as its chunk arrives.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import IO, Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.core.clock import iso
from coinpurse.ledger import queries

KINDS = ("transactions", "entries")
FORMATS = ("csv", "jsonl")
COLUMNS = {
    "transactions": ["id", "created_at", "kind", "description", "reference_id", "service",
                     "initiator", "postings", "metadata", "internal_notes",
                     "idempotency_key"],
    "entries": ["id", "transaction_id", "created_at", "address", "currency", "amount",
                "balance_after", "kind", "description", "reference_id", "service"],
}


def _transaction(row: Any) -> dict[str, Any]:
    return {"id": row.id, "created_at": iso(row.created_at), "kind": row.kind,
            "description": row.description, "reference_id": row.reference_id,
            "service": row.service, "initiator": row.initiator,
            "postings": orjson.loads(row.postings_json),
            "metadata": orjson.loads(row.metadata_json),
            "internal_notes": row.internal_notes, "idempotency_key": row.idempotency_key}


def _entry(row: Any) -> dict[str, Any]:
    return {"id": str(row.id), "transaction_id": row.transaction_id,
            "created_at": iso(row.created_at), "address": row.address,
            "currency": row.currency, "amount": row.amount,
            "balance_after": row.balance_after, "kind": row.kind,
            "description": row.description, "reference_id": row.reference_id,
            "service": row.service}


async def rows(conn: AsyncConnection, what: str, *, start: datetime | None,
               end: datetime | None, address: str | None,
               currency: str | None) -> AsyncIterator[dict[str, Any]]:
    if what == "transactions":
        after: tuple[datetime, str] | None = None
        while True:
            chunk = await queries.export_transactions(conn, start=start, end=end,
                                                      address=address, currency=currency,
                                                      after=after)
            for row in chunk:
                yield _transaction(row)
            if len(chunk) < queries.EXPORT_CHUNK:
                return
            after = (chunk[-1].created_at, chunk[-1].id)
    else:
        after_id: int | None = None
        while True:
            chunk = await queries.export_entries(conn, start=start, end=end, address=address,
                                                 currency=currency, after_id=after_id)
            for row in chunk:
                yield _entry(row)
            if len(chunk) < queries.EXPORT_CHUNK:
                return
            after_id = chunk[-1].id


def line_writer(what: str, fmt: str, out: IO[str]) -> Callable[[dict[str, Any]], None]:
    """A function that writes one row in the format; CSV starts with its header line.
    In CSV, the JSON fields (postings, metadata) are JSON text."""
    if fmt == "jsonl":
        def write_json(row: dict[str, Any]) -> None:
            out.write(orjson.dumps(row).decode() + "\n")
        return write_json
    columns = COLUMNS[what]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)

    def write_csv(row: dict[str, Any]) -> None:
        writer.writerow([_cell(row[c]) for c in columns])
    return write_csv


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return "" if value is None else value


def to_text(what: str, fmt: str, items: list[dict[str, Any]]) -> str:
    """The whole export of ``items`` as text (for tests and small outputs)."""
    buffer = io.StringIO()
    write = line_writer(what, fmt, buffer)
    for item in items:
        write(item)
    return buffer.getvalue()
