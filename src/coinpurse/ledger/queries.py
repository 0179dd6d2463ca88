"""Read side of the ledger: balances, histories, transactions. Never writes."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Row, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.ledger.model import Balance, HoldState, Posting
from coinpurse.ledger.tables import accounts, entries, holds, transactions

PAGE_MAX = 100


class HistoryEntry(NamedTuple):
    """A line of an account's history: one entry and what its transaction says. A named
    tuple: pages are read on hot paths, and a frozen dataclass costs four times as much to
    build."""

    id: int
    transaction_id: str
    currency: str
    amount: int  # signed: negative when money left the account
    balance_after: int
    created_at: datetime
    kind: str
    description: str
    reference_id: str
    service: str | None
    initiator: str
    internal_notes: str | None
    metadata_json: str  # parsed only where it is shown (the audit view)

    @property
    def metadata(self) -> dict[str, Any]:
        found: dict[str, Any] = orjson.loads(self.metadata_json)
        return found


class EntryLine(NamedTuple):
    id: int
    posting_index: int
    address: str
    currency: str
    amount: int
    balance_after: int


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """A committed transaction as stored, with its entries (the audit view)."""

    id: str
    kind: str
    description: str
    reference_id: str
    metadata: Mapping[str, Any]
    postings: tuple[Posting, ...]
    service: str | None
    initiator: str
    internal_notes: str | None
    idempotency_key: str | None
    created_at: datetime
    entries: tuple[EntryLine, ...]


async def balances(
    conn: AsyncConnection, address: str, currencies: Iterable[str]
) -> dict[str, Balance]:
    """Every listed currency, zero where the account does not exist yet. One statement
    built once (an address has one row per currency it used: few), no IN list to expand."""
    rows = (await conn.execute(_ADDRESS_BALANCES, {"address": address})).all()
    found = {r.currency: Balance(r.balance, r.held) for r in rows}
    return {c: found.get(c, Balance(0, 0)) for c in currencies}


_ADDRESS_BALANCES = select(accounts.c.currency, accounts.c.balance, accounts.c.held).where(
    accounts.c.address == bindparam("address"))


async def balances_of_pair(conn: AsyncConnection, first: str, second: str,
                           currencies: Iterable[str]
                           ) -> tuple[dict[str, Balance], dict[str, Balance]]:
    """Two addresses' balances (a user's cash and bonus wallets) in one statement, so in
    one snapshot; zero where an account does not exist yet."""
    rows = (await conn.execute(_PAIR_BALANCES, {"first": first, "second": second})).all()
    found = {(r.address, r.currency): Balance(r.balance, r.held) for r in rows}
    listed = list(currencies)
    return ({c: found.get((first, c), Balance(0, 0)) for c in listed},
            {c: found.get((second, c), Balance(0, 0)) for c in listed})


_PAIR_BALANCES = select(accounts.c.address, accounts.c.currency, accounts.c.balance,
                        accounts.c.held).where(or_(accounts.c.address == bindparam("first"),
                                                   accounts.c.address == bindparam("second")))


async def account_balances(conn: AsyncConnection, address: str) -> dict[str, Balance]:
    rows = (
        await conn.execute(
            select(accounts.c.currency, accounts.c.balance, accounts.c.held)
            .where(accounts.c.address == address)
            .order_by(accounts.c.currency)
        )
    ).all()
    return {r.currency: Balance(r.balance, r.held) for r in rows}


async def account_versions(conn: AsyncConnection, address: str) -> list[tuple[str, int]]:
    """Each currency's change count of ``address`` (``accounts.version``): equal on a
    standby and on the primary exactly when the standby holds every entry of the address
    (read routing, ``core.cluster.reads``)."""
    rows = (await conn.execute(
        select(accounts.c.currency, accounts.c.version)
        .where(accounts.c.address == address).order_by(accounts.c.currency))).all()
    return [(r.currency, int(r.version)) for r in rows]


async def entries_page(
    conn: AsyncConnection,
    address: str,
    *,
    currency: str | None,
    before_id: int | None,
    limit: int,
) -> tuple[list[HistoryEntry], int | None]:
    """Newest first; returns the entries and the id to continue before, if there are more."""
    assert 1 <= limit <= PAGE_MAX
    stmt = _entries_page_statement(currency is not None, before_id is not None)
    rows = (await conn.execute(stmt, {"address": address, "currency": currency,
                                      "before_id": before_id, "limit": limit + 1})).all()
    found = [HistoryEntry._make(r) for r in rows[:limit]]
    return found, (found[-1].id if len(rows) > limit else None)


@functools.cache
def _entries_page_statement(by_currency: bool, before: bool) -> Any:
    """The history page's statement, built once per shape (the hot read's Python cost)."""
    stmt = (
        select(
            entries.c.id, entries.c.transaction_id, accounts.c.currency, entries.c.amount,
            entries.c.balance_after, entries.c.created_at, transactions.c.kind,
            transactions.c.description, transactions.c.reference_id, transactions.c.service,
            transactions.c.initiator, transactions.c.internal_notes,
            transactions.c.metadata_json,
        )
        .join(accounts, accounts.c.id == entries.c.account_id)
        # created_at too: equal by construction, and on PostgreSQL it lets each row's
        # transaction be found in its own monthly partition (coinpurse.partitions).
        .join(transactions, (transactions.c.id == entries.c.transaction_id)
              & (transactions.c.created_at == entries.c.created_at))
        .where(accounts.c.address == bindparam("address"))
        .order_by(entries.c.id.desc())
        .limit(bindparam("limit"))
    )
    if by_currency:
        stmt = stmt.where(accounts.c.currency == bindparam("currency"))
    if before:
        stmt = stmt.where(entries.c.id < bindparam("before_id"))
    return stmt


async def transaction(conn: AsyncConnection, tx_id: str) -> TransactionRecord | None:
    """One transaction as stored, with its entries."""
    row = (await conn.execute(select(transactions).where(transactions.c.id == tx_id))).first()
    if row is None:
        return None
    entry_rows = (
        await conn.execute(
            select(entries.c.id, entries.c.posting_index, accounts.c.address,
                   accounts.c.currency, entries.c.amount, entries.c.balance_after)
            .join(accounts, accounts.c.id == entries.c.account_id)
            .where(entries.c.transaction_id == tx_id,
                   entries.c.created_at == row.created_at)  # its month's partition only
            .order_by(entries.c.id)
        )
    ).all()
    return TransactionRecord(
        id=row.id, kind=row.kind, description=row.description, reference_id=row.reference_id,
        metadata=orjson.loads(row.metadata_json),
        postings=tuple(Posting(p["source"], p["destination"], p["amount"], p["currency"])
                       for p in orjson.loads(row.postings_json)),
        service=row.service, initiator=row.initiator, internal_notes=row.internal_notes,
        idempotency_key=row.idempotency_key, created_at=row.created_at,
        entries=tuple(EntryLine._make(e) for e in entry_rows),
    )


async def postings_of(conn: AsyncConnection, keys: Sequence[tuple[str, datetime]]
                      ) -> dict[str, tuple[Posting, ...]]:
    """The postings of many transactions in one statement (a page of a history): keyed by
    ``(id, created_at)``, so that on PostgreSQL only those months' partitions are read."""
    if not keys:
        return {}
    rows = (await conn.execute(
        select(transactions.c.id, transactions.c.postings_json)
        .where(transactions.c.id.in_(list(dict.fromkeys(k[0] for k in keys))),
               transactions.c.created_at.in_(list(dict.fromkeys(k[1] for k in keys)))))).all()
    return {r.id: tuple(Posting(p["source"], p["destination"], p["amount"], p["currency"])
                        for p in orjson.loads(r.postings_json)) for r in rows}


async def open_holds(conn: AsyncConnection, user_id: str, limit: int) -> list[HoldState]:
    """A user's open holds (main wallet and sub-wallets), newest first."""
    rows = (await conn.execute(
        select(holds).where(holds.c.status == "held",
                            or_(holds.c.address == f"user:{user_id}",
                                holds.c.address.startswith(f"user:{user_id}:",
                                                           autoescape=True)))
        .order_by(holds.c.created_at.desc(), holds.c.id.desc()).limit(limit))).all()
    return [_hold_state(row) for row in rows]


async def hold(conn: AsyncConnection, hold_id: str) -> HoldState | None:
    """A hold as it stands, read without a lock (the ledger locks it to change it)."""
    row = (await conn.execute(select(holds).where(holds.c.id == hold_id))).first()
    if row is None:
        return None
    return _hold_state(row)


def _hold_state(row: Row[Any]) -> HoldState:
    return HoldState(
        id=row.id, address=row.address, currency=row.currency, amount=row.amount,
        destination=row.destination, status=row.status, service=row.service, kind=row.kind,
        description=row.description, reference_id=row.reference_id,
        metadata=orjson.loads(row.metadata_json), created_at=row.created_at,
        expires_at=row.expires_at, captured_amount=row.captured_amount,
        transaction_id=row.transaction_id, closed_at=row.closed_at,
    )


async def due_holds(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Ids of open holds past their expiry, the longest overdue first."""
    ids = (await conn.execute(
        select(holds.c.id)
        .where(holds.c.status == "held", holds.c.expires_at <= now)
        .order_by(holds.c.expires_at)
        .limit(limit)
    )).scalars().all()
    return list(ids)


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
