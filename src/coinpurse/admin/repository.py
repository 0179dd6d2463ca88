"""The only SQL of the admin domain: its own tables (adjustments, reversals), and the reports.

The reports (transaction search, a user's ledger, statistics, the gift report) read other
domains' tables, the ledger's and the gifts', because they are operators' views across all of
them; they never write there. They aggregate over ``entries`` so that every figure is
explained by the entries themselves: a transaction's amount in a currency is the sum of its
positive entries in that currency. The audit log's SQL is ``core.audit``'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Row, Select, and_, case, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.admin.model import (
    Adjustment,
    CurrencyStats,
    DayFees,
    DayVolume,
    ExportRow,
    FoundTransaction,
    GiftFilter,
    GiftGrouping,
    GiftReport,
    GiftTotal,
    KindTotal,
    LedgerLine,
    LedgerTotal,
    PendingCounts,
    PostedTransaction,
    SentGift,
    ServiceStats,
    Stats,
    TransactionSearch,
    TxFilter,
    UserLedger,
)
from coinpurse.admin.tables import adjustments, reversals
from coinpurse.core.db import insert
from coinpurse.gifts.tables import gifts
from coinpurse.kyc.tables import kyc_submissions
from coinpurse.ledger.model import Posting
from coinpurse.ledger.service import RowInserts
from coinpurse.ledger.tables import accounts, entries, transactions
from coinpurse.withdrawals.tables import withdrawals

# --- adjustments ----------------------------------------------------------------------------

def _adjustment(row: Row[Any]) -> Adjustment:
    return Adjustment(
        id=row.id, user_id=row.user_id, currency=row.currency, amount=row.amount,
        direction=row.direction, reason=row.reason, status=row.status,
        requested_by=row.requested_by, created_at=row.created_at, decided_by=row.decided_by,
        decision_note=row.decision_note, transaction_id=row.transaction_id,
        decided_at=row.decided_at)


async def adjustment(conn: AsyncConnection, adjustment_id: str) -> Adjustment | None:
    row = (await conn.execute(
        select(adjustments).where(adjustments.c.id == adjustment_id))).first()
    return _adjustment(row) if row else None


async def insert_adjustment(conn: AsyncConnection, adj: Adjustment) -> bool:
    """False when the id exists already (the same request, sent twice at the same moment:
    PostgreSQL waits for the first to commit, then inserts nothing)."""
    done = await conn.execute(insert(conn, adjustments).values(
        id=adj.id, user_id=adj.user_id, currency=adj.currency, amount=adj.amount,
        direction=adj.direction, reason=adj.reason, status=adj.status,
        requested_by=adj.requested_by, created_at=adj.created_at, decided_by=adj.decided_by,
    ).on_conflict_do_nothing(index_elements=["id"]))
    return done.rowcount == 1


async def decide_pending(conn: AsyncConnection, adjustment_id: str, *, status: str,
                         decided_by: str, note: str | None, now: datetime) -> bool:
    """Move a ``pending`` adjustment on; False when another decision came first."""
    won = await conn.execute(
        update(adjustments)
        .where(adjustments.c.id == adjustment_id, adjustments.c.status == "pending")
        .values(status=status, decided_by=decided_by, decision_note=note, decided_at=now))
    return won.rowcount == 1


async def record_outcome(conn: AsyncConnection, adjustment_id: str, *, status: str,
                         transaction_id: str | None, note: str | None, now: datetime) -> None:
    """The outcome on the row, once: only an adjustment still ``approving`` changes."""
    await conn.execute(
        update(adjustments).where(adjustments.c.id == adjustment_id,
                                  adjustments.c.status == "approving")
        .values(status=status, transaction_id=transaction_id, decided_at=now,
                decision_note=note if note else adjustments.c.decision_note))


async def list_adjustments(conn: AsyncConnection, *, status: str | None,
                           limit: int) -> list[Adjustment]:
    stmt = select(adjustments).order_by(adjustments.c.created_at.desc()).limit(limit)
    if status:
        stmt = stmt.where(adjustments.c.status == status)
    return [_adjustment(r) for r in (await conn.execute(stmt)).all()]


async def adjustment_transaction(conn: AsyncConnection, adjustment_id: str) -> str | None:
    """The ledger transaction an earlier apply of this adjustment posted, if any."""
    t = transactions.c
    found: str | None = (await conn.execute(select(t.id).where(
        t.reference_id == adjustment_id, t.kind == "adjustment",
        t.initiator.like("admin:%")))).scalar()
    return found


# --- reversals ------------------------------------------------------------------------------

async def posted_transaction(conn: AsyncConnection, tx_id: str) -> PostedTransaction | None:
    row = (await conn.execute(select(transactions).where(transactions.c.id == tx_id))).first()
    if row is None:
        return None
    postings = tuple(Posting(p["source"], p["destination"], p["amount"], p["currency"])
                     for p in orjson.loads(row.postings_json))
    return PostedTransaction(row.id, row.kind, row.description, row.service, postings)


async def reversal_of(conn: AsyncConnection, original_id: str) -> str | None:
    found: str | None = (await conn.execute(select(reversals.c.reversal_id).where(
        reversals.c.original_id == original_id))).scalar()
    return found


def reversal_rows(original_id: str, reversal_ids: list[str], *, reversed_by: str, reason: str,
                  now: datetime) -> RowInserts:
    """The reversal's record, inserted by the ledger in the commit that posts it."""
    return (reversals, [{"original_id": original_id, "reversal_id": rid,
                         "reversed_by": reversed_by, "reason": reason, "created_at": now}
                        for rid in reversal_ids])


# --- transaction search ---------------------------------------------------------------------

_tx_amounts = (
    select(entries.c.transaction_id.label("transaction_id"),
           accounts.c.currency.label("currency"),
           func.sum(entries.c.amount).label("amount"))
    .join(accounts, accounts.c.id == entries.c.account_id)
    .where(entries.c.amount > 0)
    .group_by(entries.c.transaction_id, accounts.c.currency)
    .subquery("tx_amounts")
)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _users_wallets(user_id: str) -> Any:
    """The user's main wallet and every sub-wallet (``user:<id>:<name>``)."""
    return or_(accounts.c.address == f"user:{user_id}",
               accounts.c.address.like(f"user:{_like(user_id)}:%", escape="\\"))


def _where(f: TxFilter) -> list[Any]:
    conds: list[Any] = []
    if f.kind:
        conds.append(transactions.c.kind == f.kind)
    if f.service:
        conds.append(transactions.c.service == f.service)
    if f.reference_id:
        conds.append(transactions.c.reference_id == f.reference_id)
    if f.created_from:
        conds.append(transactions.c.created_at >= f.created_from)
    if f.created_to:
        conds.append(transactions.c.created_at < f.created_to)
    if f.user_id or f.address:
        addr = []
        if f.address:
            addr.append(accounts.c.address == f.address)
        if f.user_id:
            addr.append(_users_wallets(f.user_id))
        conds.append(exists(
            select(entries.c.id).join(accounts, accounts.c.id == entries.c.account_id)
            .where(entries.c.transaction_id == transactions.c.id,
                   entries.c.created_at == transactions.c.created_at, and_(*addr))))
    return conds


def _amount_where(f: TxFilter) -> list[Any]:
    conds: list[Any] = []
    if f.currency:
        conds.append(_tx_amounts.c.currency == f.currency)
    if f.amount_min is not None:
        conds.append(_tx_amounts.c.amount >= f.amount_min)
    if f.amount_max is not None:
        conds.append(_tx_amounts.c.amount <= f.amount_max)
    return conds


def _matching(f: TxFilter) -> Select[Any]:
    """(transaction, currency, amount) rows that pass every filter."""
    return (
        select(transactions.c.id, transactions.c.kind, _tx_amounts.c.currency,
               _tx_amounts.c.amount)
        .join(_tx_amounts, _tx_amounts.c.transaction_id == transactions.c.id)
        .where(*_where(f), *_amount_where(f))
    )


async def _found(conn: AsyncConnection, ids: list[str]) -> list[FoundTransaction]:
    """The transactions of one page, in the order of ``ids``."""
    if not ids:
        return []
    rows = {r.id: r for r in (await conn.execute(
        select(transactions).where(transactions.c.id.in_(ids)))).all()}
    amounts: dict[str, dict[str, int]] = {}
    for r in (await conn.execute(select(_tx_amounts).where(
            _tx_amounts.c.transaction_id.in_(ids)))).all():
        amounts.setdefault(r.transaction_id, {})[r.currency] = int(r.amount)
    found = []
    for tx_id in ids:
        r = rows[tx_id]
        postings = tuple(Posting(p["source"], p["destination"], p["amount"], p["currency"])
                         for p in orjson.loads(r.postings_json))
        found.append(FoundTransaction(
            id=r.id, kind=r.kind, description=r.description, reference_id=r.reference_id,
            service=r.service, initiator=r.initiator, internal_notes=r.internal_notes,
            metadata=orjson.loads(r.metadata_json), postings=postings,
            amounts=amounts.get(tx_id, {}), created_at=r.created_at))
    return found


async def search_transactions(conn: AsyncConnection, f: TxFilter, *, before: str | None,
                              limit: int) -> TransactionSearch:
    matching = _matching(f).subquery("matching")
    page_ids = select(matching.c.id).distinct()
    if before:
        page_ids = page_ids.where(matching.c.id < before)
    ids = [r[0] for r in (await conn.execute(
        page_ids.order_by(matching.c.id.desc()).limit(limit + 1))).all()]
    more = len(ids) > limit
    ids = ids[:limit]
    summary_rows = (await conn.execute(
        select(matching.c.kind, matching.c.currency, func.count().label("n"),
               func.sum(matching.c.amount).label("total"))
        .group_by(matching.c.kind, matching.c.currency)
        .order_by(matching.c.kind, matching.c.currency))).all()
    summary = [KindTotal(r.kind, r.currency, int(r.n), int(r.total)) for r in summary_rows]
    return TransactionSearch(await _found(conn, ids), summary, ids[-1] if more else None)


# --- a user's ledger ------------------------------------------------------------------------

# An entry's transaction. created_at too: equal by construction, and on PostgreSQL it finds
# the transaction in its own monthly partition (coinpurse.partitions).
_same_transaction = (transactions.c.id == entries.c.transaction_id) \
    & (transactions.c.created_at == entries.c.created_at)


async def user_ledger(conn: AsyncConnection, user_id: str, *, currency: str | None,
                      before: int | None, limit: int) -> UserLedger:
    """Every entry of the user's wallets (sub-wallets too) and totals in and out per kind."""
    conds = [_users_wallets(user_id)]
    if currency:
        conds.append(accounts.c.currency == currency)
    stmt = (
        select(entries.c.id, entries.c.transaction_id, entries.c.amount,
               entries.c.balance_after, entries.c.created_at, accounts.c.address,
               accounts.c.currency, transactions.c.kind, transactions.c.description,
               transactions.c.reference_id, transactions.c.service, transactions.c.initiator,
               transactions.c.internal_notes)
        .join(accounts, accounts.c.id == entries.c.account_id)
        .join(transactions, _same_transaction)
        .where(*conds).order_by(entries.c.id.desc()).limit(limit + 1)
    )
    if before is not None:
        stmt = stmt.where(entries.c.id < before)
    rows = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    lines = [LedgerLine(**r._asdict()) for r in rows[:limit]]
    totals = (await conn.execute(
        select(transactions.c.kind, accounts.c.currency,
               func.sum(case((entries.c.amount > 0, entries.c.amount), else_=0)).label("in_"),
               func.sum(case((entries.c.amount < 0, -entries.c.amount), else_=0)).label("out"),
               func.count().label("n"))
        .join(accounts, accounts.c.id == entries.c.account_id)
        .join(transactions, _same_transaction)
        .where(*conds).group_by(transactions.c.kind, accounts.c.currency)
        .order_by(transactions.c.kind, accounts.c.currency))).all()
    return UserLedger(
        user_id=user_id, data=lines, next_id=lines[-1].id if more else None,
        totals=[LedgerTotal(t.kind, t.currency, int(t.in_), int(t.out), int(t.n))
                for t in totals])


# --- statistics -----------------------------------------------------------------------------

_USER_WALLET = accounts.c.address.like("user:%")


async def _volumes(conn: AsyncConnection, now: datetime) -> dict[str, dict[str, dict[str, int]]]:
    """currency -> "24h"/"7d" (amount per kind) and "24h_count"/"7d_count" (count)."""
    volumes: dict[str, dict[str, dict[str, int]]] = {}
    for label, since in (("24h", now - timedelta(hours=24)), ("7d", now - timedelta(days=7))):
        rows = (await conn.execute(
            select(_tx_amounts.c.currency, transactions.c.kind,
                   func.sum(_tx_amounts.c.amount), func.count())
            .join(transactions, transactions.c.id == _tx_amounts.c.transaction_id)
            .where(transactions.c.created_at >= since)
            .group_by(_tx_amounts.c.currency, transactions.c.kind))).all()
        for currency, kind, total, n in rows:
            volumes.setdefault(currency, {}).setdefault(label, {})[kind] = int(total)
            volumes[currency].setdefault(f"{label}_count", {})[kind] = int(n)
    return volumes


async def _services(conn: AsyncConnection) -> dict[str, dict[str, ServiceStats]]:
    """currency -> service name -> what it issued (paid out) and collected (took in)."""
    rows = (await conn.execute(
        select(accounts.c.address, accounts.c.currency,
               func.sum(case((entries.c.amount < 0, -entries.c.amount), else_=0)),
               func.sum(case((entries.c.amount > 0, entries.c.amount), else_=0)),
               accounts.c.balance)
        .join(entries, entries.c.account_id == accounts.c.id)
        .where(accounts.c.address.like("service:%"))
        .group_by(accounts.c.address, accounts.c.currency, accounts.c.balance))).all()
    out: dict[str, dict[str, ServiceStats]] = {}
    for address, currency, issued, collected, balance in rows:
        out.setdefault(currency, {})[address.removeprefix("service:")] = ServiceStats(
            int(issued), int(collected), int(balance))
    return out


async def stats(conn: AsyncConnection, currencies: list[str], now: datetime) -> Stats:
    in_wallets = dict((await conn.execute(
        select(accounts.c.currency, func.sum(accounts.c.balance))
        .where(_USER_WALLET).group_by(accounts.c.currency))).all())
    held = dict((await conn.execute(
        select(accounts.c.currency, func.sum(accounts.c.held))
        .where(_USER_WALLET).group_by(accounts.c.currency))).all())
    services = await _services(conn)
    volumes = await _volumes(conn, now)
    users = (await conn.execute(
        select(func.count(func.distinct(accounts.c.address)))
        .where(_USER_WALLET, accounts.c.address.not_like("user:%:%")))).scalar_one()
    per_currency = {}
    for c in currencies:
        v = volumes.get(c, {})
        per_currency[c] = CurrencyStats(
            in_user_wallets=int(in_wallets.get(c) or 0), held=int(held.get(c) or 0),
            services=services.get(c, {}), volume_24h=v.get("24h", {}),
            volume_7d=v.get("7d", {}), count_24h=v.get("24h_count", {}),
            count_7d=v.get("7d_count", {}))
    return Stats(generated_at=now, currencies=per_currency, users_with_wallet=int(users))


# --- the console's dashboard ----------------------------------------------------------------

def _day(conn: AsyncConnection, column: Any) -> Any:
    """The UTC calendar day of a timestamp as YYYY-MM-DD, on either database."""
    if conn.dialect.name == "sqlite":  # stored as naive UTC text
        return func.substr(column, 1, 10)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


async def daily_volume(conn: AsyncConnection, since: datetime,
                       currency: str | None) -> list[DayVolume]:
    """Per UTC day, currency and kind: how many transactions, and their amounts (as in the
    transaction search: a transaction's amount in a currency is its positive entries')."""
    day = _day(conn, transactions.c.created_at)
    stmt = (select(day.label("day"), _tx_amounts.c.currency, transactions.c.kind,
                   func.count().label("n"), func.sum(_tx_amounts.c.amount).label("total"))
            .join(transactions, transactions.c.id == _tx_amounts.c.transaction_id)
            .where(transactions.c.created_at >= since)
            .group_by(day, _tx_amounts.c.currency, transactions.c.kind)
            .order_by(day, _tx_amounts.c.currency, transactions.c.kind))
    if currency:
        stmt = stmt.where(_tx_amounts.c.currency == currency)
    return [DayVolume(str(r.day), r.currency, r.kind, int(r.n), int(r.total))
            for r in (await conn.execute(stmt)).all()]


async def daily_fees(conn: AsyncConnection, fee_address: str, since: datetime,
                     currency: str | None) -> list[DayFees]:
    """Per UTC day and currency: what entered the platform's fee account."""
    day = _day(conn, entries.c.created_at)
    stmt = (select(day.label("day"), accounts.c.currency,
                   func.sum(entries.c.amount).label("total"))
            .join(accounts, accounts.c.id == entries.c.account_id)
            .where(accounts.c.address == fee_address, entries.c.amount > 0,
                   entries.c.created_at >= since)
            .group_by(day, accounts.c.currency)
            .order_by(day, accounts.c.currency))
    if currency:
        stmt = stmt.where(accounts.c.currency == currency)
    return [DayFees(str(r.day), r.currency, int(r.total))
            for r in (await conn.execute(stmt)).all()]


async def pending_counts(conn: AsyncConnection) -> PendingCounts:
    """The approval queues' lengths (withdrawals' and KYC's tables are read, never written)."""
    counts = []
    for table in (withdrawals, kyc_submissions, adjustments):
        counts.append(int((await conn.execute(
            select(func.count()).select_from(table)
            .where(table.c.status == "pending"))).scalar_one()))
    return PendingCounts(*counts)


async def export_batches(conn: AsyncConnection, f: TxFilter, *, limit: int,
                         batch: int) -> AsyncIterator[list[ExportRow]]:
    """The transaction search's matches, newest first, ``batch`` transactions at a time (one
    row per transaction and currency), at most ``limit`` transactions in all."""
    matching = _matching(f).subquery("matching")
    before: str | None = None
    left = limit
    while left > 0:
        ids_stmt = select(matching.c.id).distinct()
        if before is not None:
            ids_stmt = ids_stmt.where(matching.c.id < before)
        ids = [r[0] for r in (await conn.execute(
            ids_stmt.order_by(matching.c.id.desc()).limit(min(batch, left)))).all()]
        if not ids:
            return
        txs = {r.id: r for r in (await conn.execute(
            select(transactions).where(transactions.c.id.in_(ids)))).all()}
        amounts: dict[str, list[tuple[str, int]]] = {}
        for r in (await conn.execute(select(_tx_amounts).where(
                _tx_amounts.c.transaction_id.in_(ids)).order_by(_tx_amounts.c.currency))).all():
            amounts.setdefault(r.transaction_id, []).append((r.currency, int(r.amount)))
        rows: list[ExportRow] = []
        for tx_id in ids:
            t = txs[tx_id]
            rows.extend(ExportRow(t.id, t.created_at, t.kind, cur, amount, t.description,
                                  t.reference_id, t.service, t.initiator)
                        for cur, amount in amounts.get(tx_id, [])
                        if not f.currency or cur == f.currency)
        yield rows
        before = ids[-1]
        left -= len(ids)


# --- gifts ----------------------------------------------------------------------------------

def _gift_where(f: GiftFilter) -> list[Any]:
    conds: list[Any] = []
    for column, value in ((gifts.c.from_user_id, f.from_user_id),
                          (gifts.c.to_user_id, f.to_user_id),
                          (gifts.c.agency_id, f.agency_id), (gifts.c.gift_type, f.gift_type)):
        if value is not None:
            conds.append(column == value)
    if f.created_from:
        conds.append(gifts.c.created_at >= f.created_from)
    if f.created_to:
        conds.append(gifts.c.created_at < f.created_to)
    return conds


def _gift(r: Row[Any]) -> SentGift:
    return SentGift(
        id=r.id, transaction_id=r.transaction_id, from_user_id=r.from_user_id,
        to_user_id=r.to_user_id, gift_type=r.gift_type, currency=r.currency, amount=r.amount,
        receiver_amount=r.receiver_amount, agency_id=r.agency_id,
        agency_commission=r.agency_amount, platform_fee=r.platform_fee, message=r.message,
        context_id=r.context_id, created_at=r.created_at)


async def _gift_totals(conn: AsyncConnection, conds: list[Any],
                       by: GiftGrouping) -> list[GiftTotal]:
    column = gifts.c[by]
    rows = (await conn.execute(
        select(column, gifts.c.currency, func.count(), func.sum(gifts.c.amount),
               func.sum(gifts.c.receiver_amount), func.sum(gifts.c.agency_amount),
               func.sum(gifts.c.platform_fee))
        .where(*conds).group_by(column, gifts.c.currency)
        .order_by(column, gifts.c.currency))).all()
    return [GiftTotal(by, r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]))
            for r in rows]


async def gift_report(conn: AsyncConnection, f: GiftFilter, *, before: str | None,
                      limit: int) -> GiftReport:
    conds = _gift_where(f)
    stmt = select(gifts).where(*conds).order_by(gifts.c.id.desc()).limit(limit + 1)
    if before:
        stmt = stmt.where(gifts.c.id < before)
    rows = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    found = [_gift(r) for r in rows[:limit]]
    return GiftReport(
        data=found, next_id=found[-1].id if more else None,
        totals_by_gift_type=await _gift_totals(conn, conds, "gift_type"),
        totals_by_receiver=await _gift_totals(conn, conds, "to_user_id"),
        totals_by_agency=await _gift_totals(conn, conds, "agency_id"))
