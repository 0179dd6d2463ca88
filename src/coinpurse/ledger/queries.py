"""Read side of the ledger: balances, histories, transactions. Never writes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.ledger.model import Balance
from coinpurse.ledger.tables import accounts, entries, transactions

PAGE_MAX = 100


async def balances(
    conn: AsyncConnection, address: str, currencies: Iterable[str]
) -> dict[str, Balance]:
    """Every listed currency, zero where the account does not exist yet."""
    wanted = list(currencies)
    rows = (
        await conn.execute(
            select(accounts.c.currency, accounts.c.balance, accounts.c.held).where(
                accounts.c.address == address, accounts.c.currency.in_(wanted)
            )
        )
    ).all()
    found = {r.currency: Balance(r.balance, r.held) for r in rows}
    return {c: found.get(c, Balance(0, 0)) for c in wanted}


async def account_balances(conn: AsyncConnection, address: str) -> dict[str, Balance]:
    rows = (
        await conn.execute(
            select(accounts.c.currency, accounts.c.balance, accounts.c.held)
            .where(accounts.c.address == address)
            .order_by(accounts.c.currency)
        )
    ).all()
    return {r.currency: Balance(r.balance, r.held) for r in rows}


async def entries_page(
    conn: AsyncConnection,
    address: str,
    *,
    currency: str | None,
    before_id: int | None,
    limit: int,
) -> tuple[list[Row[Any]], int | None]:
    """Newest first; returns the rows and the id to continue before, if there are more."""
    assert 1 <= limit <= PAGE_MAX
    stmt = (
        select(
            entries.c.id, entries.c.transaction_id, entries.c.amount, entries.c.balance_after,
            entries.c.created_at, entries.c.posting_index, accounts.c.currency,
            transactions.c.kind, transactions.c.description, transactions.c.reference_id,
            transactions.c.metadata_json, transactions.c.service, transactions.c.initiator,
            transactions.c.internal_notes,
        )
        .join(accounts, accounts.c.id == entries.c.account_id)
        .join(transactions, transactions.c.id == entries.c.transaction_id)
        .where(accounts.c.address == address)
        .order_by(entries.c.id.desc())
        .limit(limit + 1)
    )
    if currency is not None:
        stmt = stmt.where(accounts.c.currency == currency)
    if before_id is not None:
        stmt = stmt.where(entries.c.id < before_id)
    rows: list[Row[Any]] = list((await conn.execute(stmt)).all())  # type: ignore[arg-type]
    more = len(rows) > limit
    rows = rows[:limit]
    next_id: int | None = rows[-1].id if more else None
    return rows, next_id


def entry_view(row: Row[Any], *, audit: bool) -> dict[str, Any]:
    """A history line; the audit view adds what users must never see."""
    view: dict[str, Any] = {
        "id": str(row.id),
        "transaction_id": row.transaction_id,
        "currency": row.currency,
        "amount": row.amount,
        "kind": row.kind,
        "description": row.description,
        "reference_id": row.reference_id,
        "balance_after": row.balance_after,
        "created_at": _iso(row.created_at),
    }
    if audit:
        view["service"] = row.service
        view["initiator"] = row.initiator
        view["internal_notes"] = row.internal_notes
        view["metadata"] = orjson.loads(row.metadata_json)
    return view


async def transaction(conn: AsyncConnection, tx_id: str) -> dict[str, Any] | None:
    """The audit view of one transaction with its entries."""
    row = (await conn.execute(select(transactions).where(transactions.c.id == tx_id))).first()
    if row is None:
        return None
    entry_rows = (
        await conn.execute(
            select(entries.c.id, entries.c.posting_index, entries.c.amount,
                   entries.c.balance_after, accounts.c.address, accounts.c.currency)
            .join(accounts, accounts.c.id == entries.c.account_id)
            .where(entries.c.transaction_id == tx_id)
            .order_by(entries.c.id)
        )
    ).all()
    return {
        "id": row.id,
        "kind": row.kind,
        "description": row.description,
        "reference_id": row.reference_id,
        "metadata": orjson.loads(row.metadata_json),
        "postings": orjson.loads(row.postings_json),
        "service": row.service,
        "initiator": row.initiator,
        "internal_notes": row.internal_notes,
        "idempotency_key": row.idempotency_key,
        "created_at": _iso(row.created_at),
        "entries": [
            {"id": str(e.id), "posting_index": e.posting_index, "address": e.address,
             "currency": e.currency, "amount": e.amount, "balance_after": e.balance_after}
            for e in entry_rows
        ],
    }


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- export (oldest first)

EXPORT_CHUNK = 1000


def _export_filter(created_at: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    where = []
    if start is not None:
        where.append(created_at >= start)
    if end is not None:
        where.append(created_at < end)
    return where


def _touching(address: str | None, currency: str | None) -> Any:
    """Transaction ids with an entry on the address (and currency)."""
    stmt = select(entries.c.transaction_id).join(accounts, accounts.c.id == entries.c.account_id)
    if address is not None:
        stmt = stmt.where(accounts.c.address == address)
    if currency is not None:
        stmt = stmt.where(accounts.c.currency == currency)
    return stmt


async def export_transactions(
    conn: AsyncConnection, *, start: datetime | None, end: datetime | None,
    address: str | None, currency: str | None, after: tuple[datetime, str] | None,
    limit: int = EXPORT_CHUNK,
) -> list[Any]:
    """One chunk of transactions in (created_at, id) order, after ``after``."""
    t = transactions.c
    stmt = select(t.id, t.created_at, t.kind, t.description, t.reference_id, t.service,
                  t.initiator, t.postings_json, t.metadata_json, t.internal_notes,
                  t.idempotency_key)
    where = _export_filter(t.created_at, start, end)
    if address is not None or currency is not None:
        where.append(t.id.in_(_touching(address, currency)))
    if after is not None:
        where.append((t.created_at > after[0]) | ((t.created_at == after[0]) & (t.id > after[1])))
    stmt = stmt.where(*where).order_by(t.created_at, t.id).limit(limit)
    return list((await conn.execute(stmt)).all())


async def export_entries(
    conn: AsyncConnection, *, start: datetime | None, end: datetime | None,
    address: str | None, currency: str | None, after_id: int | None,
    limit: int = EXPORT_CHUNK,
) -> list[Any]:
    """One chunk of entries in id order (the order they were written), after ``after_id``."""
    e = entries.c
    stmt = (select(e.id, e.transaction_id, e.created_at, accounts.c.address,
                   accounts.c.currency, e.amount, e.balance_after, transactions.c.kind,
                   transactions.c.description, transactions.c.reference_id,
                   transactions.c.service)
            .join(accounts, accounts.c.id == e.account_id)
            .join(transactions, transactions.c.id == e.transaction_id))
    where = _export_filter(e.created_at, start, end)
    if address is not None:
        where.append(accounts.c.address == address)
    if currency is not None:
        where.append(accounts.c.currency == currency)
    if after_id is not None:
        where.append(e.id > after_id)
    stmt = stmt.where(*where).order_by(e.id).limit(limit)
    return list((await conn.execute(stmt)).all())


async def export_count(conn: AsyncConnection, what: str, *, start: datetime | None,
                       end: datetime | None, address: str | None,
                       currency: str | None) -> int:
    """How many rows an export will write (for its progress bar)."""
    if what == "transactions":
        t = transactions.c
        where = _export_filter(t.created_at, start, end)
        if address is not None or currency is not None:
            where.append(t.id.in_(_touching(address, currency)))
        stmt = select(func.count()).select_from(transactions).where(*where)
    else:
        e = entries.c
        where = _export_filter(e.created_at, start, end)
        if address is not None:
            where.append(accounts.c.address == address)
        if currency is not None:
            where.append(accounts.c.currency == currency)
        stmt = (select(func.count()).select_from(entries)
                .join(accounts, accounts.c.id == e.account_id).where(*where))
    return int((await conn.execute(stmt)).scalar_one())
