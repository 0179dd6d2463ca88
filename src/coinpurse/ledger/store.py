"""The ledger's SQL. Set-based: the round trips of a batch do not grow with its size.

Accounts are created with one multi-row ``INSERT ... ON CONFLICT DO NOTHING`` and locked with
one ``SELECT ... FOR UPDATE`` ordered by (address, currency): every batch, in every process,
takes its locks in the same global order, so batches cannot deadlock (pgledger's rule).
SQLite has a single writer (``BEGIN IMMEDIATE``), so there is nothing to order there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.ledger.model import AccountKey, AccountState, HoldState, Transaction
from coinpurse.tables import accounts, entries, holds, transactions

_UPDATE_BALANCES = (
    update(accounts)
    .where(accounts.c.id == bindparam("b_id"))
    .values(balance=bindparam("b_balance"), held=bindparam("b_held"),
            updated_at=bindparam("b_now"))
)


def keys_match(first: Any, second: Any, pairs: Iterable[tuple[str, str]]) -> Any:
    """``(first, second) IN pairs`` as ``(second = x AND first IN (...)) OR ...``.

    Grouped by the second column (few currencies, few scopes), each arm is one index range
    scan on the unique (first, second) index, however many pairs there are; a long list of
    row-value comparisons would make the planner fall back to scanning the table."""
    groups: dict[str, list[str]] = {}
    for a, b in pairs:
        groups.setdefault(b, []).append(a)
    return or_(*(and_(second == b, first.in_(sorted(a_list)))
                 for b, a_list in sorted(groups.items())))


def _insert(conn: AsyncConnection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


async def lock_accounts(
    conn: AsyncConnection,
    keys: Iterable[AccountKey],
    *,
    may_go_negative: Callable[[str], bool],
    now: datetime,
) -> dict[AccountKey, AccountState]:
    """Create missing accounts and lock all of them, in sorted order."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    await conn.execute(
        _insert(conn, accounts).on_conflict_do_nothing(
            index_elements=["address", "currency"]
        ),
        [
            {"address": a, "currency": c, "balance": 0, "held": 0,
             "overdraft": may_go_negative(a), "created_at": now, "updated_at": now}
            for a, c in ordered
        ],
    )
    stmt = (
        select(accounts.c.id, accounts.c.address, accounts.c.currency, accounts.c.balance,
               accounts.c.held, accounts.c.overdraft)
        .where(keys_match(accounts.c.address, accounts.c.currency, ordered))
        .order_by(accounts.c.address, accounts.c.currency)
        .with_for_update()
    )
    rows = (await conn.execute(stmt)).all()
    states = {
        (r.address, r.currency): AccountState(
            r.id, r.address, r.currency, r.balance, r.held, bool(r.overdraft)
        )
        for r in rows
    }
    assert len(states) == len(ordered), "an account vanished between insert and lock"
    return states


_UPDATE_HOLDS = (
    update(holds)
    .where(holds.c.id == bindparam("h_id"))
    .values(status=bindparam("h_status"), captured_amount=bindparam("h_captured"),
            transaction_id=bindparam("h_tx"), closed_at=bindparam("h_closed"))
)


async def lock_holds(conn: AsyncConnection, hold_ids: Iterable[str]) -> dict[str, HoldState]:
    """Lock the holds a batch operates on, sorted by id; before any account lock."""
    ordered = sorted(set(hold_ids))
    if not ordered:
        return {}
    rows = (
        await conn.execute(
            select(holds).where(holds.c.id.in_(ordered)).order_by(holds.c.id).with_for_update()
        )
    ).all()
    return {
        r.id: HoldState(
            id=r.id, address=r.address, currency=r.currency, amount=r.amount,
            destination=r.destination, status=r.status, service=r.service, kind=r.kind,
            description=r.description, reference_id=r.reference_id,
            metadata=orjson.loads(r.metadata_json), created_at=r.created_at,
            expires_at=r.expires_at, captured_amount=r.captured_amount,
            transaction_id=r.transaction_id, closed_at=r.closed_at,
        )
        for r in rows
    }


async def write_holds(
    conn: AsyncConnection,
    changed: Iterable[HoldState],
    account_ids: dict[AccountKey, int],
    idempotency_keys: dict[str, str | None],
) -> None:
    new = [h for h in changed if h.is_new]
    old = [h for h in changed if h.dirty and not h.is_new]
    if new:
        await conn.execute(holds.insert(), [
            {"id": h.id, "account_id": account_ids[(h.address, h.currency)],
             "address": h.address, "currency": h.currency, "amount": h.amount,
             "destination": h.destination, "status": h.status, "service": h.service,
             "kind": h.kind, "description": h.description, "reference_id": h.reference_id,
             "metadata_json": orjson.dumps(dict(h.metadata)).decode(),
             "captured_amount": h.captured_amount, "transaction_id": h.transaction_id,
             "idempotency_key": idempotency_keys.get(h.id), "created_at": h.created_at,
             "expires_at": h.expires_at, "closed_at": h.closed_at}
            for h in new
        ])
    if old:
        await conn.execute(_UPDATE_HOLDS, [
            {"h_id": h.id, "h_status": h.status, "h_captured": h.captured_amount,
             "h_tx": h.transaction_id, "h_closed": h.closed_at}
            for h in old
        ])


async def write_batch(
    conn: AsyncConnection,
    states: Iterable[AccountState],
    posted: Sequence[Transaction],
    *,
    now: datetime,
) -> None:
    """Write what the engine decided: balances, transactions, entries."""
    dirty = [s for s in states if s.dirty]
    if dirty:
        await conn.execute(
            _UPDATE_BALANCES,
            [{"b_id": s.id, "b_balance": s.balance, "b_held": s.held, "b_now": now}
             for s in dirty],
        )
    if not posted:
        return
    await conn.execute(transactions.insert(), [_transaction_row(t) for t in posted])
    entry_rows = [
        {"transaction_id": t.id, "account_id": e.account_id, "posting_index": e.posting_index,
         "amount": e.amount, "balance_after": e.balance_after, "created_at": t.created_at}
        for t in posted
        for e in t.entries
    ]
    if entry_rows:
        await conn.execute(entries.insert(), entry_rows)


def _transaction_row(t: Transaction) -> dict[str, Any]:
    spec = t.spec
    return {
        "id": t.id,
        "kind": spec.kind,
        "description": spec.description,
        "reference_id": spec.reference_id,
        "metadata_json": orjson.dumps(dict(spec.metadata)).decode(),
        "postings_json": orjson.dumps(
            [{"source": p.source, "destination": p.destination, "amount": p.amount,
              "currency": p.currency} for p in spec.postings]
        ).decode(),
        "initiator": spec.initiator,
        "service": spec.service,
        "internal_notes": spec.internal_notes,
        "idempotency_key": t.idempotency_key,
        "created_at": t.created_at,
    }
