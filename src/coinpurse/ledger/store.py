"""The ledger's SQL. Set-based: the round trips of a batch do not grow with its size.

Accounts not yet known to this process are created with one ``INSERT ... ON CONFLICT DO
NOTHING``, then all are locked with one ``SELECT ... FOR UPDATE`` ordered by (address,
currency): every batch, in every process, takes its locks in the same global order, so batches
cannot deadlock (pgledger's rule). On PostgreSQL each write is one statement over arrays
(``unnest``), whatever the batch size; SQLite, which has a single writer (``BEGIN
IMMEDIATE``) and no network, uses executemany.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    TextClause,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    not_,
    null,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.core.db import array_rows, insert, is_postgres, keys_match
from coinpurse.ledger import idempotency
from coinpurse.ledger.idempotency import Claim, StoredResponse
from coinpurse.ledger.model import AccountKey, AccountState, HoldState, Transaction
from coinpurse.ledger.tables import accounts, entries, holds, transactions

_UPDATE_BALANCES = (
    update(accounts)
    .where(accounts.c.id == bindparam("b_id"))
    .values(balance=bindparam("b_balance"), held=bindparam("b_held"),
            version=bindparam("b_version"), updated_at=bindparam("b_now"))
)


class KnownAccounts:
    """Accounts this process has seen committed; accounts are never deleted, so it only grows.

    Add keys only after the transaction that locked them has committed: a key added earlier
    could name a row another batch of this process cannot see yet."""

    SIZE_MAX = 1_000_000

    def __init__(self) -> None:
        self._keys: set[AccountKey] = set()

    def missing(self, keys: Sequence[AccountKey]) -> list[AccountKey]:
        return [k for k in keys if k not in self._keys]

    def add(self, keys: Iterable[AccountKey]) -> None:
        if len(self._keys) > self.SIZE_MAX:
            self._keys.clear()
        self._keys.update(keys)


_PG_CREATE_ACCOUNTS = text(
    "INSERT INTO accounts (address, currency, balance, held, overdraft, created_at, updated_at) "
    "SELECT t.a, t.c, 0, 0, t.o, :now, :now FROM unnest(CAST(:a AS TEXT[]), "
    "CAST(:c AS TEXT[]), CAST(:o AS BOOLEAN[])) WITH ORDINALITY AS t(a, c, o, n) "
    "ORDER BY t.n ON CONFLICT (address, currency) DO NOTHING"
)


_ACCOUNT_STATE = select(accounts.c.id, accounts.c.address, accounts.c.currency,
                        accounts.c.balance, accounts.c.held, accounts.c.overdraft,
                        accounts.c.version)
_WANTED = array_rows(address="addresses", currency="currencies")
# Locked in (address, currency) order: PostgreSQL locks the rows as the sorted scan yields
# them, so concurrent batches take their locks in one order.
_PG_LOCK_ACCOUNTS = (
    _ACCOUNT_STATE.join_from(accounts, _WANTED, and_(accounts.c.address == _WANTED.c.address,
                                                     accounts.c.currency == _WANTED.c.currency))
    .order_by(accounts.c.address, accounts.c.currency).with_for_update(of=accounts))


# PostgreSQL, a batch without captures or releases (no hold to lock first): its idempotency
# keys' advisory locks, their stored answers and the account locks in ONE statement, one
# round trip. The parts run in the order of the UNION: the keys' locks are tried first (never
# waited on), then the answers are looked up, then the accounts are locked in sorted order
# (a CTE with FOR UPDATE is never inlined: it locks in its own order; a row it waited for is
# read as it is once locked). The look-up reads the statement's snapshot, taken an instant
# before the keys' locks: an answer committed in between is not seen, and its job would run
# again; but its answer then collides with the committed one on the idempotency key's
# primary key, the whole batch rolls back, and its jobs re-run one by one, each finding the
# answer (Ledger._run; a batch of one job is answered 503, retry with the same key, and the
# retry replays). So a key's money never moves twice; the rare race costs a re-run.
_LOCKED = _PG_LOCK_ACCOUNTS.cte("locked")
_FOUND = idempotency.PG_FIND.cte("found")
_CLAIMED = func.unnest(bindparam("lock_ids", type_=postgresql.ARRAY(BigInteger))
                       ).table_valued("lock_id").render_derived().alias("claimed")


def _nulls(columns: Iterable[Any]) -> list[Any]:
    return [cast(null(), c.type).label(c.name) for c in columns]


_PG_FIND_AND_LOCK = select(  # busy keys: the lock_id in the id column
    literal_column("'busy'").label("part"), _CLAIMED.c.lock_id.label("id"),
    *_nulls(list(_LOCKED.c)[1:]), *_nulls(_FOUND.c),
).where(not_(func.pg_try_advisory_xact_lock(_CLAIMED.c.lock_id, type_=Boolean))).union_all(
    select(literal_column("'answer'"), *_nulls(_LOCKED.c), *_FOUND.c),
    select(literal_column("'account'"), *_LOCKED.c, *_nulls(_FOUND.c)),
)


async def find_and_lock(
    conn: AsyncConnection, claims: Sequence[Claim], keys: Iterable[AccountKey],
) -> tuple[set[tuple[str, str]], dict[tuple[str, str], idempotency.Existing],
           dict[AccountKey, AccountState]]:
    """PostgreSQL: the claims another transaction holds (busy), the answers stored for the
    others, and those accounts of ``keys`` that exist, locked in sorted order; in one
    statement. It creates none: an account missing from the answer is new (the caller
    takes the long way, which creates accounts before it locks any)."""
    ordered = sorted(set(keys))
    rows = (await conn.execute(_PG_FIND_AND_LOCK, {
        "lock_ids": [c.lock_id for c in claims],  # a hash each: only again if one is busy
        "addresses": [a for a, _ in ordered], "currencies": [c for _, c in ordered],
        "scopes": [c.scope for c in claims], "keys": [c.key for c in claims]})).all()
    busy_ids: set[int] = set()
    states: dict[AccountKey, AccountState] = {}
    existing: dict[tuple[str, str], idempotency.Existing] = {}
    for r in rows:
        if r.part == "account":
            states[(r.address, r.currency)] = AccountState(
                r.id, r.address, r.currency, r.balance, r.held, bool(r.overdraft), r.version)
        elif r.part == "answer":
            existing[(r.scope, r.key)] = idempotency.Existing(
                r.request_hash, StoredResponse(r.status_code, bytes(r.response_body)))
        else:
            busy_ids.add(r.id)
    busy = {c.ident for c in claims if c.lock_id in busy_ids} if busy_ids else set()
    return busy, existing, states


async def _create_missing(conn: AsyncConnection, ordered: Sequence[AccountKey],
                          may_go_negative: Callable[[str], bool], now: datetime,
                          known: KnownAccounts | None) -> None:
    create = known.missing(ordered) if known is not None else ordered
    if create and is_postgres(conn):
        await conn.execute(_PG_CREATE_ACCOUNTS, {
            "a": [a for a, _ in create], "c": [c for _, c in create],
            "o": [may_go_negative(a) for a, _ in create], "now": now})
    elif create:
        await conn.execute(
            insert(conn, accounts).on_conflict_do_nothing(
                index_elements=["address", "currency"]
            ),
            [
                {"address": a, "currency": c, "balance": 0, "held": 0,
                 "overdraft": may_go_negative(a), "created_at": now, "updated_at": now}
                for a, c in create
            ],
        )


async def lock_accounts(
    conn: AsyncConnection,
    keys: Iterable[AccountKey],
    *,
    may_go_negative: Callable[[str], bool],
    now: datetime,
    known: KnownAccounts | None = None,
) -> dict[AccountKey, AccountState]:
    """Create missing accounts and lock all of them, in sorted order."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    await _create_missing(conn, ordered, may_go_negative, now, known)
    if is_postgres(conn):  # every batch locks: one statement compiled once, arrays bound
        rows = (await conn.execute(_PG_LOCK_ACCOUNTS, {
            "addresses": [a for a, _ in ordered], "currencies": [c for _, c in ordered]})).all()
    else:
        rows = (await conn.execute(
            _ACCOUNT_STATE.where(keys_match(accounts.c.address, accounts.c.currency, ordered))
            .order_by(accounts.c.address, accounts.c.currency).with_for_update())).all()
    states = {
        (r.address, r.currency): AccountState(
            r.id, r.address, r.currency, r.balance, r.held, bool(r.overdraft), r.version
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
    done: Sequence[tuple[Claim, StoredResponse]] = (),
    expires_at: datetime | None = None,
) -> None:
    """Write what the engine decided: balances, transactions, entries, and the stored
    answers of the batch's idempotency keys (``done``, kept until ``expires_at``)."""
    dirty = [s for s in states if s.dirty]
    rows = [_transaction_row(t) for t in posted]
    entry_rows = [
        {"transaction_id": t.id, "account_id": e.account_id, "posting_index": e.posting_index,
         "amount": e.amount, "balance_after": e.balance_after, "created_at": t.created_at}
        for t in posted
        for e in t.entries
    ]
    if is_postgres(conn):
        await _pg_write(conn, dirty, rows, entry_rows, done, now, expires_at)
        return
    if dirty:
        await conn.execute(
            _UPDATE_BALANCES,
            [{"b_id": s.id, "b_balance": s.balance, "b_held": s.held, "b_version": s.version,
              "b_now": now} for s in dirty],
        )
    if rows:
        await conn.execute(transactions.insert(), rows)
    if entry_rows:
        await conn.execute(entries.insert(), entry_rows)
    if done:
        assert expires_at is not None
        await idempotency.store(conn, done, now=now, expires_at=expires_at)


# The batch's writes on PostgreSQL, one part per table, arrays in whatever the number of
# rows; the parts present go out as ONE statement (the first ones as data-modifying CTEs),
# so a batch's writes cost one round trip, not four. The parts touch different tables and
# none reads another's rows; the foreign keys of entries are checked at the statement's end.
_TX_COLUMNS = ("id", "kind", "description", "reference_id", "metadata_json", "postings_json",
               "initiator", "service", "internal_notes", "idempotency_key")
_PG_PARTS = {
    "balances": (
        "UPDATE accounts AS a SET balance = v.b, held = v.h, version = v.v, updated_at = :now "
        "FROM unnest(CAST(:u_id AS BIGINT[]), CAST(:u_b AS BIGINT[]), CAST(:u_h AS BIGINT[]), "
        "CAST(:u_v AS BIGINT[])) AS v(id, b, h, v) WHERE a.id = v.id"),
    "transactions": (
        f"INSERT INTO transactions ({', '.join(_TX_COLUMNS)}, created_at) "
        "SELECT *, CAST(:now AS TIMESTAMPTZ) FROM unnest("
        + ", ".join(f"CAST(:t_{c} AS TEXT[])" for c in _TX_COLUMNS) + ")"),
    "entries": (
        "INSERT INTO entries (transaction_id, account_id, posting_index, amount, "
        "balance_after, created_at) SELECT n.tx, n.acc, n.idx, n.amt, n.after, :now FROM "
        "unnest(CAST(:e_tx AS TEXT[]), CAST(:e_acc AS BIGINT[]), CAST(:e_idx AS SMALLINT[]), "
        "CAST(:e_amt AS BIGINT[]), CAST(:e_after AS BIGINT[])) WITH ORDINALITY "
        "AS n(tx, acc, idx, amt, after, ord) ORDER BY n.ord"),
    "keys": (
        "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response_body, "
        "created_at, expires_at) SELECT k.s, k.k, k.h, k.st, k.b, :now, :k_exp FROM unnest("
        "CAST(:k_s AS TEXT[]), CAST(:k_k AS TEXT[]), CAST(:k_h AS TEXT[]), "
        "CAST(:k_st AS SMALLINT[]), CAST(:k_b AS BYTEA[])) AS k(s, k, h, st, b)"),
}


@functools.cache
def _pg_statement(parts: tuple[str, ...]) -> TextClause:
    *first, last = parts
    ctes = ", ".join(f"w_{p} AS ({_PG_PARTS[p]})" for p in first)
    return text((f"WITH {ctes} " if ctes else "") + _PG_PARTS[last])


async def _pg_write(conn: AsyncConnection, dirty: list[AccountState],
                    rows: list[dict[str, Any]], entry_rows: list[dict[str, Any]],
                    done: Sequence[tuple[Claim, StoredResponse]], now: datetime,
                    expires_at: datetime | None) -> None:
    params: dict[str, Any] = {"now": now}
    parts: list[str] = []
    if dirty:
        parts.append("balances")
        params.update(u_id=[s.id for s in dirty], u_b=[s.balance for s in dirty],
                      u_h=[s.held for s in dirty], u_v=[s.version for s in dirty])
    if rows:
        assert all(r["created_at"] == now for r in rows)
        parts.append("transactions")
        params.update({f"t_{c}": [r[c] for r in rows] for c in _TX_COLUMNS})
    if entry_rows:
        parts.append("entries")
        params.update(e_tx=[e["transaction_id"] for e in entry_rows],
                      e_acc=[e["account_id"] for e in entry_rows],
                      e_idx=[e["posting_index"] for e in entry_rows],
                      e_amt=[e["amount"] for e in entry_rows],
                      e_after=[e["balance_after"] for e in entry_rows])
    if done:
        assert expires_at is not None
        parts.append("keys")
        params.update(k_s=[c.scope for c, _ in done], k_k=[c.key for c, _ in done],
                      k_h=[c.request_hash for c, _ in done], k_st=[r.status for _, r in done],
                      k_b=[r.body for _, r in done], k_exp=expires_at)
    if parts:
        await conn.execute(_pg_statement(tuple(parts)), params)


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
