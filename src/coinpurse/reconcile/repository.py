"""The only SQL of the reconciliation domain: its own tables (seals, runs, discrepancies,
marks), and read-only queries over the tables it checks (the ledger's, payment orders,
withdrawals). Like the admin reports, it reads other domains' tables and never writes them.

Every read is chunked (``limit``) or bounded by the ids it is given, so a run's memory does
not grow with the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    Row,
    and_,
    any_,
    bindparam,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement, TextClause

from coinpurse.bonuses.book import wallet_of
from coinpurse.bonuses.tables import bonus_changes, bonuses
from coinpurse.core.db import insert, is_postgres
from coinpurse.ledger.tables import accounts, archived_entry_totals, entries, holds, transactions
from coinpurse.partitions.repository import add_months
from coinpurse.payments.model import CREDITED
from coinpurse.payments.tables import payment_orders
from coinpurse.reconcile.canonical import EntryRow, TxRow
from coinpurse.reconcile.model import (
    AccountState,
    Discrepancy,
    LedgerEntry,
    LinkedTx,
    Mark,
    OrderRow,
    Run,
    Seal,
    ShopOrderRow,
    ShopRefundRow,
    WithdrawalRow,
)
from coinpurse.reconcile.tables import (
    ledger_seals,
    reconcile_marks,
    reconciliation_discrepancies,
    reconciliations,
)
from coinpurse.shop.tables import order_refunds
from coinpurse.shop.tables import orders as shop_orders
from coinpurse.withdrawals.tables import withdrawals


def among(conn: AsyncConnection, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN values``: on PostgreSQL one array parameter (``= ANY``), not a thousand
    bound values to render and send; a plain list on SQLite."""
    result: ColumnElement[bool]
    if is_postgres(conn):
        result = column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    else:
        result = column.in_(list(values))
    return result


def _by_ids(conn: AsyncConnection, sql: str, column: str, sql_type: str) -> TextClause:
    """A hot query over a list of ids, as plain SQL: ``{ids}`` becomes one array parameter
    ``:ids`` on PostgreSQL, an expanding ``IN`` on SQLite. Plain SQL returns plain values
    (no per-row type processing): times go through ``_utc``."""
    if is_postgres(conn):
        return text(sql.format(ids=f"{column} = ANY(CAST(:ids AS {sql_type}[]))"))
    return text(sql.format(ids=f"{column} IN :ids")).bindparams(
        bindparam("ids", expanding=True))


_TIMES: dict[str, datetime] = {}


def _utc(value: Any) -> datetime:
    """A time as plain SQL returns it: aware from PostgreSQL, text (UTC) from SQLite."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    found = _TIMES.get(value)
    if found is None:
        if len(_TIMES) > 4096:
            _TIMES.clear()
        found = _TIMES[value] = datetime.fromisoformat(value).replace(tzinfo=UTC)
    return found


# --- a consistent read ------------------------------------------------------------------------


async def snapshot(conn: AsyncConnection) -> None:
    """Make the rest of this read transaction see one moment (PostgreSQL; a SQLite read
    transaction is one snapshot already)."""
    if is_postgres(conn):
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))


# --- seals ------------------------------------------------------------------------------------


_SEAL_COLUMNS = (ledger_seals.c.sequence, ledger_seals.c.transaction_id,
                 ledger_seals.c.entry_count, ledger_seals.c.hash, ledger_seals.c.previous_hash,
                 ledger_seals.c.event_id, ledger_seals.c.sealed_at,
                 ledger_seals.c.created_at)


def _seal(r: Any) -> Seal:
    return Seal(*r[:8])  # the columns of _SEAL_COLUMNS, in Seal's order


async def head(conn: AsyncConnection) -> Seal | None:
    row = (await conn.execute(select(*_SEAL_COLUMNS).order_by(ledger_seals.c.sequence.desc())
                              .limit(1))).first()
    return _seal(row) if row else None


async def seal_at(conn: AsyncConnection, sequence: int) -> Seal | None:
    row = (await conn.execute(select(*_SEAL_COLUMNS)
                              .where(ledger_seals.c.sequence == sequence))).first()
    return _seal(row) if row else None


_SEALS_AFTER = text(
    "SELECT sequence, transaction_id, entry_count, hash, previous_hash, event_id, sealed_at, "
    "created_at FROM ledger_seals WHERE sequence > :after AND sequence <= :through "
    "ORDER BY sequence LIMIT :n")


async def seals_after(conn: AsyncConnection, after: int, through: int, limit: int
                      ) -> list[Seal]:
    rows = (await conn.execute(_SEALS_AFTER, {"after": after, "through": through,
                                              "n": limit})).all()
    return [Seal(r[0], r[1], r[2], r[3], r[4], r[5], _utc(r[6]),
                 _utc(r[7]) if r[7] is not None else None) for r in rows]


async def sealed_among(conn: AsyncConnection, tx_ids: Sequence[str]) -> set[str]:
    if not tx_ids:
        return set()
    rows = (await conn.execute(select(ledger_seals.c.transaction_id)
                               .where(among(conn, ledger_seals.c.transaction_id, tx_ids)))).all()
    return {r[0] for r in rows}


_PG_INSERT_SEALS = text(
    "INSERT INTO ledger_seals (sequence, transaction_id, entry_count, hash, previous_hash, "
    "event_id, sealed_at, created_at) SELECT t.s, t.t, t.n, t.h, t.p, t.e, :at, t.c FROM unnest("
    "CAST(:s AS BIGINT[]), CAST(:t AS TEXT[]), CAST(:n AS INTEGER[]), CAST(:h AS TEXT[]), "
    "CAST(:p AS TEXT[]), CAST(:e AS BIGINT[]), CAST(:c AS TIMESTAMPTZ[])) "
    "AS t(s, t, n, h, p, e, c)")


async def insert_seals(conn: AsyncConnection, seals: Sequence[Seal]) -> None:
    """One statement on PostgreSQL (arrays in), however many seals."""
    if seals and is_postgres(conn):
        await conn.execute(_PG_INSERT_SEALS, {
            "s": [x.sequence for x in seals], "t": [x.transaction_id for x in seals],
            "n": [x.entry_count for x in seals], "h": [x.hash for x in seals],
            "p": [x.previous_hash for x in seals], "e": [x.event_id for x in seals],
            "c": [x.created_at for x in seals], "at": seals[0].sealed_at})
    elif seals:
        await conn.execute(ledger_seals.insert(), [
            {"sequence": s.sequence, "transaction_id": s.transaction_id,
             "entry_count": s.entry_count, "hash": s.hash, "previous_hash": s.previous_hash,
             "event_id": s.event_id, "sealed_at": s.sealed_at, "created_at": s.created_at}
            for s in seals])


def _live(horizon: datetime | None) -> ColumnElement[bool]:
    """Seals of transactions still in the tables' months (not archived before ``horizon``)."""
    if horizon is None:
        return ledger_seals.c.sequence.is_not(None)
    return or_(ledger_seals.c.created_at.is_(None), ledger_seals.c.created_at >= horizon)


async def seal_totals(conn: AsyncConnection, horizon: datetime | None = None
                      ) -> tuple[int, int]:
    """How many seals of live (not archived) transactions, and how many entries they
    counted."""
    row = (await conn.execute(select(func.count(), func.coalesce(
        func.sum(ledger_seals.c.entry_count), 0)).where(_live(horizon)))).one()
    return int(row[0]), int(row[1])


async def seals_without_transaction(conn: AsyncConnection, limit: int,
                                    horizon: datetime | None = None) -> list[Seal]:
    rows = (await conn.execute(
        select(*_SEAL_COLUMNS).outerjoin(transactions,
                                       transactions.c.id == ledger_seals.c.transaction_id)
        .where(transactions.c.id.is_(None), _live(horizon))
        .order_by(ledger_seals.c.sequence).limit(limit))).all()
    return [_seal(r) for r in rows]


async def seals_with_other_entry_count(conn: AsyncConnection, limit: int,
                                       horizon: datetime | None = None
                                       ) -> list[tuple[Seal, int]]:
    """Seals whose transaction now has another number of entries than they counted."""
    counted = (select(entries.c.transaction_id, func.count().label("n"))
               .group_by(entries.c.transaction_id).subquery())
    rows = (await conn.execute(
        select(*_SEAL_COLUMNS, func.coalesce(counted.c.n, 0).label("now"))
        .outerjoin(counted, counted.c.transaction_id == ledger_seals.c.transaction_id)
        .where(ledger_seals.c.entry_count != func.coalesce(counted.c.n, 0), _live(horizon))
        .order_by(ledger_seals.c.sequence).limit(limit))).all()
    return [(_seal(r), int(r.now)) for r in rows]


# --- archived months (coinpurse partitions detach) ----------------------------------------


async def archive_horizon(conn: AsyncConnection) -> datetime | None:
    """The start of the first month not archived: the month after the newest month of
    ``entries`` whose totals were archived (detached months are always the oldest ones).
    None when nothing was archived. Taken from the archive's records, not from which
    months are attached, so a month dropped without being archived is a discrepancy."""
    names = (await conn.execute(select(archived_entry_totals.c.partition_name).distinct())
             ).scalars().all()
    months = sorted(n.removeprefix("entries_y") for n in names if n.startswith("entries_y"))
    if not months:
        return None
    newest = months[-1]  # YYYYmMM
    first_live = add_months(datetime(int(newest[:4]), int(newest[5:7]), 1).date(), 1)
    return datetime(first_live.year, first_live.month, 1, tzinfo=UTC)


async def archived_totals(conn: AsyncConnection, account_ids: Sequence[int]
                          ) -> dict[int, int]:
    """Per account, the total of its entries in archived months."""
    if not account_ids:
        return {}
    a = archived_entry_totals
    rows = (await conn.execute(select(a.c.account_id, func.sum(a.c.total))
                               .where(among(conn, a.c.account_id, account_ids))
                               .group_by(a.c.account_id))).all()
    return {int(r[0]): int(r[1]) for r in rows}


async def archive_counts(conn: AsyncConnection, horizon: datetime) -> tuple[int, int]:
    """Entries the archive's totals account for, and entries the archived months' seals
    counted: equal unless the archive's records were changed."""
    recorded = (await conn.execute(select(func.coalesce(func.sum(
        archived_entry_totals.c.entries), 0)))).scalar_one()
    sealed = (await conn.execute(select(func.coalesce(func.sum(
        ledger_seals.c.entry_count), 0)).where(ledger_seals.c.created_at < horizon))
    ).scalar_one()
    return int(recorded), int(sealed)


async def archived_among(conn: AsyncConnection, tx_ids: Iterable[str],
                         horizon: datetime | None) -> set[str]:
    """Which of these transactions were sealed in a month archived since."""
    ids = list(dict.fromkeys(tx_ids))
    if horizon is None or not ids:
        return set()
    rows = (await conn.execute(select(ledger_seals.c.transaction_id).where(
        among(conn, ledger_seals.c.transaction_id, ids),
        ledger_seals.c.created_at < horizon))).scalars().all()
    return set(rows)


# --- the ledger's rows --------------------------------------------------------------------------


_TX_COLUMNS = (transactions.c.id, transactions.c.kind, transactions.c.description,
               transactions.c.reference_id, transactions.c.metadata_json,
               transactions.c.postings_json, transactions.c.initiator, transactions.c.service,
               transactions.c.internal_notes, transactions.c.idempotency_key,
               transactions.c.created_at)
_TX_SQL = ("SELECT id, kind, description, reference_id, metadata_json, postings_json, "
           "initiator, service, internal_notes, idempotency_key, created_at FROM transactions "
           "WHERE {ids}")
_ENTRIES_SQL = (
    "SELECT e.id, e.transaction_id, e.account_id, a.address, a.currency, e.posting_index, "
    "e.amount, e.balance_after, e.created_at FROM entries e "
    "JOIN accounts a ON a.id = e.account_id WHERE {ids} ORDER BY e.id")


def _tx(r: Any) -> TxRow:
    """A row of _TX_COLUMNS (or _TX_SQL), in TxRow's order."""
    return TxRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], _utc(r[10]))


async def transactions_by_id(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, TxRow]:
    if not ids:
        return {}
    rows = (await conn.execute(_by_ids(conn, _TX_SQL, "id", "TEXT"), {"ids": list(ids)})).all()
    return {r[0]: _tx(r) for r in rows}


async def entries_of(conn: AsyncConnection, tx_ids: Sequence[str]) -> dict[str, list[EntryRow]]:
    """Each transaction's entries with their accounts, ordered by id."""
    found: dict[str, list[EntryRow]] = {t: [] for t in tx_ids}
    if not tx_ids:
        return found
    rows = (await conn.execute(_by_ids(conn, _ENTRIES_SQL, "e.transaction_id", "TEXT"),
                               {"ids": list(tx_ids)})).all()
    for r in rows:
        found.setdefault(r[1], []).append(EntryRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6],
                                                   r[7], _utc(r[8])))
    return found


async def genesis_batch(conn: AsyncConnection, *, before: datetime | None,
                        after: tuple[datetime, str] | None, limit: int
                        ) -> list[tuple[datetime, str]]:
    """Transactions created before ``before`` (all if None), in (created_at, id) order,
    after the key ``after``: the ones sealed first, since no event is left to seal them by."""
    stmt = select(transactions.c.created_at, transactions.c.id)
    if before is not None:
        stmt = stmt.where(transactions.c.created_at < before)
    if after is not None:
        stmt = stmt.where(or_(transactions.c.created_at > after[0],
                              and_(transactions.c.created_at == after[0],
                                   transactions.c.id > after[1])))
    rows = (await conn.execute(stmt.order_by(transactions.c.created_at, transactions.c.id)
                               .limit(limit))).all()
    return [(r.created_at, r.id) for r in rows]


async def unsealed(conn: AsyncConnection, *, created_before: datetime,
                   created_since: datetime | None, limit: int) -> list[TxRow]:
    """Transactions without a seal, created in [since, before)."""
    stmt = (select(*_TX_COLUMNS)
            .outerjoin(ledger_seals, ledger_seals.c.transaction_id == transactions.c.id)
            .where(ledger_seals.c.transaction_id.is_(None),
                   transactions.c.created_at < created_before))
    if created_since is not None:
        stmt = stmt.where(transactions.c.created_at >= created_since)
    rows = (await conn.execute(stmt.order_by(transactions.c.created_at, transactions.c.id)
                               .limit(limit))).all()
    return [_tx(r) for r in rows]


async def unsealed_recent(conn: AsyncConnection, since: datetime) -> tuple[int, int]:
    """Transactions created since ``since`` and not sealed yet, and their entries."""
    recent = (select(transactions.c.id)
              .outerjoin(ledger_seals, ledger_seals.c.transaction_id == transactions.c.id)
              .where(ledger_seals.c.transaction_id.is_(None),
                     transactions.c.created_at >= since).subquery())
    n_tx = (await conn.execute(select(func.count()).select_from(recent))).scalar_one()
    n_entries = (await conn.execute(
        select(func.count()).select_from(entries)
        .where(entries.c.transaction_id.in_(select(recent.c.id))))).scalar_one()
    return int(n_tx), int(n_entries)


async def ledger_totals(conn: AsyncConnection) -> tuple[int, int]:
    """How many transactions and entries there are."""
    n_tx = (await conn.execute(select(func.count()).select_from(transactions))).scalar_one()
    n_e = (await conn.execute(select(func.count()).select_from(entries))).scalar_one()
    return int(n_tx), int(n_e)


# --- accounts, entries, holds -----------------------------------------------------------------


async def currency_sums(conn: AsyncConnection) -> dict[str, int]:
    rows = (await conn.execute(select(accounts.c.currency, func.sum(accounts.c.balance))
                               .group_by(accounts.c.currency))).all()
    return {r[0]: int(r[1]) for r in rows}


async def accounts_after(conn: AsyncConnection, after_id: int, limit: int, *,
                         changed_only: bool) -> list[AccountState]:
    """Accounts by id, with their marks; ``changed_only``: those that differ from their
    mark (or have none)."""
    m = reconcile_marks
    stmt = (select(accounts.c.id, accounts.c.address, accounts.c.currency, accounts.c.balance,
                   accounts.c.held, accounts.c.version, m.c.balance.label("m_balance"),
                   m.c.held.label("m_held"), m.c.version.label("m_version"),
                   m.c.last_entry_id.label("m_last"))
            .outerjoin(m, m.c.account_id == accounts.c.id)
            .where(accounts.c.id > after_id).order_by(accounts.c.id).limit(limit))
    if changed_only:
        stmt = stmt.where(or_(m.c.account_id.is_(None), accounts.c.balance != m.c.balance,
                              accounts.c.held != m.c.held, accounts.c.version != m.c.version))
    rows = (await conn.execute(stmt)).all()
    return [AccountState(r.id, r.address, r.currency, r.balance, r.held, r.version,
                         r.m_balance, r.m_held, r.m_version, r.m_last) for r in rows]


async def entries_of_accounts(conn: AsyncConnection, floors: Mapping[int, int]
                              ) -> list[LedgerEntry]:
    """Each account's entries with an id above its floor, by account, then id: one index
    range per account (``(account_id, id)``)."""
    if not floors:
        return []
    e = entries
    if not any(floors.values()):
        where = among(conn, e.c.account_id, floors)
    else:
        where = or_(*(and_(e.c.account_id == a, e.c.id > f) for a, f in floors.items()))
    rows = (await conn.execute(select(e.c.account_id, e.c.id, e.c.amount, e.c.balance_after)
                               .where(where).order_by(e.c.account_id, e.c.id))).all()
    return [LedgerEntry(*r) for r in rows]


async def open_holds(conn: AsyncConnection, account_ids: Sequence[int]) -> dict[int, int]:
    """The sum of each account's open holds."""
    if not account_ids:
        return {}
    rows = (await conn.execute(
        select(holds.c.account_id, func.sum(holds.c.amount))
        .where(holds.c.status == "held", among(conn, holds.c.account_id, account_ids))
        .group_by(holds.c.account_id))).all()
    return {int(r[0]): int(r[1]) for r in rows}


async def save_marks(conn: AsyncConnection, marks: Sequence[Mark], at: datetime) -> None:
    """Upsert the marks of the accounts a clean run checked, in chunks."""
    m = reconcile_marks
    for start in range(0, len(marks), 5000):
        chunk = marks[start:start + 5000]
        if is_postgres(conn):
            await conn.execute(text(
                "INSERT INTO reconcile_marks (account_id, balance, held, version, last_entry_id, "
                "checked_at) SELECT t.a, t.b, t.h, t.v, t.l, :at FROM unnest("
                "CAST(:a AS BIGINT[]), CAST(:b AS BIGINT[]), CAST(:h AS BIGINT[]), "
                "CAST(:v AS BIGINT[]), CAST(:l AS BIGINT[])) AS t(a, b, h, v, l) "
                "ON CONFLICT (account_id) DO UPDATE SET balance = excluded.balance, "
                "held = excluded.held, version = excluded.version, "
                "last_entry_id = excluded.last_entry_id, checked_at = excluded.checked_at"),
                {"a": [k.account_id for k in chunk], "b": [k.balance for k in chunk],
                 "h": [k.held for k in chunk], "v": [k.version for k in chunk],
                 "l": [k.last_entry_id for k in chunk], "at": at})
            continue
        stmt = insert(conn, m)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["account_id"],
            set_={c: stmt.excluded[c] for c in ("balance", "held", "version", "last_entry_id",
                                                "checked_at")}),
            [{"account_id": k.account_id, "balance": k.balance, "held": k.held,
              "version": k.version, "last_entry_id": k.last_entry_id, "checked_at": at}
             for k in chunk])


# --- payments and withdrawals -------------------------------------------------------------------


def _order(r: Row[Any]) -> OrderRow:
    return OrderRow(r.id, r.user_id, r.provider, r.provider_order_id, r.status, r.currency,
                    r.amount, r.bonus, r.price, r.price_currency, r.credit_transaction_id,
                    r.reversal_transaction_id, r.reversed_amount, r.paid_at)


async def orders_after(conn: AsyncConnection, after_id: str, limit: int, *,
                       since: datetime | None) -> list[OrderRow]:
    """Orders by id; with ``since``, those changed since then, and every paid order that
    names no credit (a cheap look at all of them: the status index)."""
    o = payment_orders
    stmt = select(o).where(o.c.id > after_id).order_by(o.c.id).limit(limit)
    if since is not None:
        stmt = stmt.where(or_(o.c.updated_at >= since, o.c.created_at >= since,
                              o.c.paid_at >= since,
                              and_(o.c.status.in_(CREDITED),
                                   o.c.credit_transaction_id.is_(None))))
    return [_order(r) for r in (await conn.execute(stmt)).all()]


async def orders_by_id(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, OrderRow]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = (await conn.execute(select(payment_orders)
                               .where(among(conn, payment_orders.c.id, wanted)))).all()
    return {r.id: _order(r) for r in rows}


async def orders_paid_between(conn: AsyncConnection, provider: str, start: datetime,
                              end: datetime) -> list[OrderRow]:
    o = payment_orders
    rows = (await conn.execute(select(o).where(o.c.provider == provider, o.c.paid_at >= start,
                                               o.c.paid_at < end).order_by(o.c.id))).all()
    return [_order(r) for r in rows]


async def orders_by_provider_order(conn: AsyncConnection, provider: str,
                                   provider_order_ids: Iterable[str]) -> dict[str, OrderRow]:
    wanted = sorted(set(provider_order_ids))
    found: dict[str, OrderRow] = {}
    for start in range(0, len(wanted), 1000):
        rows = (await conn.execute(select(payment_orders).where(
            payment_orders.c.provider == provider,
            among(conn, payment_orders.c.provider_order_id, wanted[start:start + 1000])))).all()
        found.update({r.provider_order_id: _order(r) for r in rows})
    return found


def _linked(r: Any) -> LinkedTx:
    return LinkedTx(r.id, r.kind, r.initiator, r.reference_id, orjson.loads(r.postings_json))


async def transactions_referencing(conn: AsyncConnection, reference_ids: Iterable[str]
                                   ) -> list[LinkedTx]:
    wanted = sorted(set(reference_ids))
    if not wanted:
        return []
    t = transactions
    rows = (await conn.execute(select(t.c.id, t.c.kind, t.c.initiator, t.c.reference_id,
                                      t.c.postings_json)
                               .where(among(conn, t.c.reference_id, wanted)))).all()
    return [_linked(r) for r in rows]


async def linked_transactions(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, LinkedTx]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    t = transactions
    rows = (await conn.execute(select(t.c.id, t.c.kind, t.c.initiator, t.c.reference_id,
                                      t.c.postings_json).where(among(conn, t.c.id, wanted)))).all()
    return {r.id: _linked(r) for r in rows}


# --- the shop's orders ----------------------------------------------------------------------

_SHOP_ORDER_COLUMNS = (shop_orders.c.id, shop_orders.c.buyer_id, shop_orders.c.merchant_id,
                       shop_orders.c.currency, shop_orders.c.amount, shop_orders.c.fee,
                       shop_orders.c.refunded_amount, shop_orders.c.refunded_fee,
                       shop_orders.c.status, shop_orders.c.transaction_id)


def _shop_order(r: Any) -> ShopOrderRow:
    return ShopOrderRow(r.id, r.buyer_id, r.merchant_id, r.currency, r.amount, r.fee,
                        r.refunded_amount, r.refunded_fee, r.status, r.transaction_id)


async def shop_orders_after(conn: AsyncConnection, after_id: str, limit: int, *,
                            since: datetime | None) -> list[ShopOrderRow]:
    """Shop orders by id; with ``since``, those created or refunded since then."""
    o = shop_orders
    stmt = select(*_SHOP_ORDER_COLUMNS).where(o.c.id > after_id).order_by(o.c.id).limit(limit)
    if since is not None:
        stmt = stmt.where(o.c.updated_at >= since)
    return [_shop_order(r) for r in (await conn.execute(stmt)).all()]


async def shop_orders_by_id(conn: AsyncConnection, ids: Iterable[str]
                            ) -> dict[str, ShopOrderRow]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = (await conn.execute(select(*_SHOP_ORDER_COLUMNS)
                               .where(among(conn, shop_orders.c.id, wanted)))).all()
    return {r.id: _shop_order(r) for r in rows}


async def shop_refunds_of(conn: AsyncConnection, order_ids: Iterable[str]
                          ) -> dict[str, list[ShopRefundRow]]:
    """Each order's refunds (the ``(order_id, id)`` index)."""
    wanted = sorted(set(order_ids))
    if not wanted:
        return {}
    r = order_refunds
    rows = (await conn.execute(select(r.c.id, r.c.order_id, r.c.amount, r.c.fee,
                                      r.c.transaction_id)
                               .where(among(conn, r.c.order_id, wanted))
                               .order_by(r.c.order_id, r.c.id))).all()
    found: dict[str, list[ShopRefundRow]] = {}
    for row in rows:
        found.setdefault(row.order_id, []).append(ShopRefundRow(*row))
    return found


async def withdrawals_after(conn: AsyncConnection, after_id: str, limit: int, *,
                            since: datetime | None) -> list[WithdrawalRow]:
    """Approved and paid withdrawals by id (changed since ``since``), with their holds."""
    w = withdrawals
    stmt = (select(w.c.id, w.c.user_id, w.c.currency, w.c.amount, w.c.status,
                   w.c.transaction_id, w.c.hold_id, holds.c.status.label("hold_status"),
                   holds.c.transaction_id.label("hold_tx"))
            .outerjoin(holds, holds.c.id == w.c.hold_id)
            .where(w.c.id > after_id, w.c.status.in_(("approved", "paid")))
            .order_by(w.c.id).limit(limit))
    if since is not None:
        stmt = stmt.where(w.c.updated_at >= since)
    rows = (await conn.execute(stmt)).all()
    return [WithdrawalRow(r.id, r.user_id, r.currency, r.amount, r.status, r.transaction_id,
                          r.hold_id, r.hold_status, r.hold_tx) for r in rows]


# --- runs ---------------------------------------------------------------------------------------


def _run(r: Row[Any]) -> Run:
    return Run(id=r.id, kind=r.kind, mode=r.mode, status=r.status, trigger=r.trigger,
               scheduled_for=r.scheduled_for, provider=r.provider,
               scope=orjson.loads(r.scope_json), counts=orjson.loads(r.counts_json),
               discrepancy_count=r.discrepancy_count, error=r.error, started_at=r.started_at,
               heartbeat_at=r.heartbeat_at, finished_at=r.finished_at)


async def insert_run(conn: AsyncConnection, run: Run) -> bool:
    """Insert a running run; False when its day is taken or a run of its kind is active."""
    stmt = insert(conn, reconciliations).values(
        id=run.id, kind=run.kind, mode=run.mode, status=run.status, trigger=run.trigger,
        scheduled_for=run.scheduled_for, active_kind=run.kind, provider=run.provider,
        scope_json=orjson.dumps(run.scope).decode(), counts_json="{}",
        discrepancy_count=0, error=None, started_at=run.started_at,
        heartbeat_at=run.heartbeat_at, finished_at=None).on_conflict_do_nothing()
    return (await conn.execute(stmt)).rowcount == 1


async def day_claimed(conn: AsyncConnection, day: str) -> bool:
    found = (await conn.execute(select(reconciliations.c.id)
                                .where(reconciliations.c.scheduled_for == day))).first()
    return found is not None


async def heartbeat(conn: AsyncConnection, run_id: str, at: datetime) -> None:
    await conn.execute(update(reconciliations).where(reconciliations.c.id == run_id)
                       .values(heartbeat_at=at))


async def finish_run(conn: AsyncConnection, run_id: str, *, status: str, mode: str,
                     scope: dict[str, Any], counts: dict[str, int], discrepancy_count: int,
                     error: str | None, at: datetime) -> None:
    await conn.execute(update(reconciliations).where(reconciliations.c.id == run_id).values(
        status=status, mode=mode, scope_json=orjson.dumps(scope).decode(),
        counts_json=orjson.dumps(counts).decode(), discrepancy_count=discrepancy_count,
        error=error, active_kind=None, heartbeat_at=at, finished_at=at))


async def insert_discrepancies(conn: AsyncConnection, run_id: str,
                               found: Sequence[Discrepancy]) -> None:
    if found:
        await conn.execute(reconciliation_discrepancies.insert(), [
            {"run_id": run_id, "check_name": d.check, "subject_type": d.subject_type,
             "subject": d.subject[:255], "detail": d.detail[:1000],
             "expected_json": None if d.expected is None else orjson.dumps(d.expected).decode(),
             "actual_json": None if d.actual is None else orjson.dumps(d.actual).decode()}
            for d in found])


async def run(conn: AsyncConnection, run_id: str) -> Run | None:
    row = (await conn.execute(select(reconciliations)
                              .where(reconciliations.c.id == run_id))).first()
    return _run(row) if row else None


async def discrepancies(conn: AsyncConnection, run_id: str, limit: int) -> list[Discrepancy]:
    d = reconciliation_discrepancies
    rows = (await conn.execute(select(d).where(d.c.run_id == run_id).order_by(d.c.id)
                               .limit(limit))).all()
    return [Discrepancy(r.check_name, r.subject_type, r.subject, r.detail,
                        None if r.expected_json is None else orjson.loads(r.expected_json),
                        None if r.actual_json is None else orjson.loads(r.actual_json))
            for r in rows]


async def runs_page(conn: AsyncConnection, *, kind: str | None, status: str | None,
                    before: str | None, limit: int) -> list[Run]:
    """Runs, newest first (ids are UUIDv7)."""
    r = reconciliations
    stmt = select(r).order_by(r.c.id.desc()).limit(limit)
    if kind is not None:
        stmt = stmt.where(r.c.kind == kind)
    if status is not None:
        stmt = stmt.where(r.c.status == status)
    if before is not None:
        stmt = stmt.where(r.c.id < before)
    return [_run(row) for row in (await conn.execute(stmt)).all()]


async def last_run(conn: AsyncConnection, kind: str, *, status: str = "passed",
                   mode: str | None = None) -> Run | None:
    r = reconciliations
    stmt = (select(r).where(r.c.kind == kind, r.c.status == status)
            .order_by(r.c.id.desc()).limit(1))
    if mode is not None:
        stmt = stmt.where(r.c.mode == mode)
    row = (await conn.execute(stmt)).first()
    return _run(row) if row else None


async def abandon_stale(conn: AsyncConnection, heartbeat_before: datetime, at: datetime
                        ) -> list[str]:
    """Runs whose process stopped beating: marked ``error``, freeing their kind."""
    r = reconciliations
    ids = [row[0] for row in (await conn.execute(
        select(r.c.id).where(r.c.status == "running", r.c.heartbeat_at < heartbeat_before)
    )).all()]
    if ids:
        await conn.execute(update(r).where(r.c.id.in_(ids), r.c.status == "running").values(
            status="error", active_kind=None, finished_at=at,
            error="abandoned: the process running it stopped (no progress for minutes)"))
    return ids


# --- bonuses ------------------------------------------------------------------------------------

BONUS_WALLET = ":bonus"  # a user's bonus wallet is ``user:<id>:bonus`` (bonuses.book)


def bonus_wallet_user(address: str) -> str | None:
    if address.startswith("user:") and address.endswith(BONUS_WALLET):
        return address[len("user:"):-len(BONUS_WALLET)] or None
    return None


async def bonus_users_after(conn: AsyncConnection, after: str, limit: int, *,
                            since: datetime | None) -> list[str]:
    """Users with bonuses, by id; with ``since``, those whose bonuses were granted, changed
    or closed since then."""
    b = bonuses.c
    stmt = select(b.user_id).where(b.user_id > after)
    if since is not None:
        changed = select(bonus_changes.c.bonus_id).where(bonus_changes.c.created_at >= since)
        stmt = stmt.where(or_(b.created_at >= since, b.closed_at >= since, b.id.in_(changed)))
    rows = (await conn.execute(stmt.group_by(b.user_id).order_by(b.user_id).limit(limit))).all()
    return [r[0] for r in rows]


async def bonus_books(conn: AsyncConnection, users: Sequence[str]
                      ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """(bonus wallet balances, what remains of the active bonuses), each keyed by
    (``user:<id>:bonus``, currency), for these users."""
    if not users:
        return {}, {}
    b = bonuses.c
    rows = (await conn.execute(
        select(b.user_id, b.currency, func.sum(b.remaining))
        .where(b.status == "active", among(conn, b.user_id, users))
        .group_by(b.user_id, b.currency))).all()
    remaining = {(wallet_of(r[0]), r[1]): int(r[2]) for r in rows}
    rows = (await conn.execute(
        select(accounts.c.address, accounts.c.currency, accounts.c.balance)
        .where(among(conn, accounts.c.address, [wallet_of(u) for u in users])))).all()
    wallets = {(r[0], r[1]): int(r[2]) for r in rows}
    return wallets, remaining


async def orphan_bonus_wallets_after(conn: AsyncConnection, after_id: int, limit: int
                                     ) -> list[tuple[int, str]]:
    """(account id, user) of bonus wallets that hold money while their user has no bonus
    row at all (the users with bonuses are checked by ``bonus_books``)."""
    a = accounts.c
    has_bonuses = select(bonuses.c.user_id).where(
        (literal("user:") + bonuses.c.user_id + literal(BONUS_WALLET)) == a.address).exists()
    rows = (await conn.execute(
        select(a.id, a.address).where(a.id > after_id, a.address.like("user:%:bonus"),
                                      a.balance != 0, ~has_bonuses)
        .order_by(a.id).limit(limit))).all()
    return [(int(r[0]), user) for r in rows if (user := bonus_wallet_user(r[1])) is not None]
