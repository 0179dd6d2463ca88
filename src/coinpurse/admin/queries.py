"""Read-only queries behind the admin API: transaction search, user ledgers, statistics.

They aggregate over ``entries`` so that every figure is explained by the entries themselves:
a transaction's amount in a currency is the sum of its positive entries in that currency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Select, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.tables import accounts, audit_log, entries, gifts, transactions

_tx_amounts = (
    select(entries.c.transaction_id.label("transaction_id"),
           accounts.c.currency.label("currency"),
           func.sum(entries.c.amount).label("amount"))
    .join(accounts, accounts.c.id == entries.c.account_id)
    .where(entries.c.amount > 0)
    .group_by(entries.c.transaction_id, accounts.c.currency)
    .subquery("tx_amounts")
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass(frozen=True, slots=True)
class TxFilter:
    user_id: str | None = None
    address: str | None = None
    currency: str | None = None
    kind: str | None = None
    service: str | None = None
    reference_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    amount_min: int | None = None
    amount_max: int | None = None


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
            addr.append(or_(accounts.c.address == f"user:{f.user_id}",
                            accounts.c.address.like(f"user:{_like(f.user_id)}:%", escape="\\")))
        conds.append(exists(
            select(entries.c.id).join(accounts, accounts.c.id == entries.c.account_id)
            .where(entries.c.transaction_id == transactions.c.id,
                   entries.c.created_at == transactions.c.created_at, and_(*addr))))
    return conds


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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


async def search_transactions(conn: AsyncConnection, f: TxFilter, *, before: str | None,
                              limit: int) -> tuple[list[dict[str, Any]], str | None,
                                                   list[dict[str, Any]]]:
    matching = _matching(f).subquery("matching")
    page_ids = select(matching.c.id).distinct()
    if before:
        page_ids = page_ids.where(matching.c.id < before)
    ids = [r[0] for r in (await conn.execute(
        page_ids.order_by(matching.c.id.desc()).limit(limit + 1))).all()]
    more = len(ids) > limit
    ids = ids[:limit]
    data: list[dict[str, Any]] = []
    if ids:
        rows = {r.id: r for r in (await conn.execute(
            select(transactions).where(transactions.c.id.in_(ids)))).all()}
        amounts: dict[str, dict[str, int]] = {}
        for r in (await conn.execute(select(_tx_amounts).where(
                _tx_amounts.c.transaction_id.in_(ids)))).all():
            amounts.setdefault(r.transaction_id, {})[r.currency] = int(r.amount)
        for tx_id in ids:
            r = rows[tx_id]
            data.append({
                "id": r.id, "kind": r.kind, "description": r.description,
                "reference_id": r.reference_id, "service": r.service,
                "initiator": r.initiator, "internal_notes": r.internal_notes,
                "metadata": orjson.loads(r.metadata_json),
                "postings": orjson.loads(r.postings_json),
                "amounts": amounts.get(tx_id, {}), "created_at": _iso(r.created_at),
            })
    summary_rows = (await conn.execute(
        select(matching.c.kind, matching.c.currency, func.count().label("n"),
               func.sum(matching.c.amount).label("total"))
        .group_by(matching.c.kind, matching.c.currency)
        .order_by(matching.c.kind, matching.c.currency))).all()
    summary = [{"kind": r.kind, "currency": r.currency, "count": int(r.n),
                "total": int(r.total)} for r in summary_rows]
    return data, (ids[-1] if more else None), summary


async def user_ledger(conn: AsyncConnection, user_id: str, *, currency: str | None,
                      before: int | None, limit: int) -> dict[str, Any]:
    """Every entry of the user's wallets (sub-wallets too) and totals in and out per kind."""
    mine = or_(accounts.c.address == f"user:{user_id}",
               accounts.c.address.like(f"user:{_like(user_id)}:%", escape="\\"))
    conds = [mine]
    if currency:
        conds.append(accounts.c.currency == currency)
    stmt = (
        select(entries.c.id, entries.c.transaction_id, entries.c.amount,
               entries.c.balance_after, entries.c.created_at, accounts.c.address,
               accounts.c.currency, transactions.c.kind, transactions.c.description,
               transactions.c.reference_id, transactions.c.service, transactions.c.initiator,
               transactions.c.internal_notes)
        .join(accounts, accounts.c.id == entries.c.account_id)
        .join(transactions, (transactions.c.id == entries.c.transaction_id)
              & (transactions.c.created_at == entries.c.created_at))
        .where(*conds).order_by(entries.c.id.desc()).limit(limit + 1)
    )
    if before is not None:
        stmt = stmt.where(entries.c.id < before)
    rows = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    totals = (await conn.execute(
        select(transactions.c.kind, accounts.c.currency,
               func.sum(case((entries.c.amount > 0, entries.c.amount), else_=0)).label("in_"),
               func.sum(case((entries.c.amount < 0, -entries.c.amount), else_=0)).label("out"),
               func.count().label("n"))
        .join(accounts, accounts.c.id == entries.c.account_id)
        .join(transactions, (transactions.c.id == entries.c.transaction_id)
              & (transactions.c.created_at == entries.c.created_at))
        .where(*conds).group_by(transactions.c.kind, accounts.c.currency)
        .order_by(transactions.c.kind, accounts.c.currency))).all()
    return {
        "user_id": user_id,
        "data": [{
            "id": str(r.id), "transaction_id": r.transaction_id, "address": r.address,
            "currency": r.currency, "amount": r.amount, "balance_after": r.balance_after,
            "kind": r.kind, "description": r.description, "reference_id": r.reference_id,
            "service": r.service, "initiator": r.initiator,
            "internal_notes": r.internal_notes, "created_at": _iso(r.created_at),
        } for r in rows],
        "next_id": rows[-1].id if more else None,
        "totals": [{"kind": t.kind, "currency": t.currency, "in": int(t.in_),
                    "out": int(t.out), "entries": int(t.n)} for t in totals],
    }


async def stats(conn: AsyncConnection, currencies: list[str],
                now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    out: dict[str, Any] = {"generated_at": _iso(now), "currencies": {}}
    user_wallet = accounts.c.address.like("user:%")
    in_wallets = dict((await conn.execute(
        select(accounts.c.currency, func.sum(accounts.c.balance))
        .where(user_wallet).group_by(accounts.c.currency))).all())
    held = dict((await conn.execute(
        select(accounts.c.currency, func.sum(accounts.c.held))
        .where(user_wallet).group_by(accounts.c.currency))).all())
    services = (await conn.execute(
        select(accounts.c.address, accounts.c.currency,
               func.sum(case((entries.c.amount < 0, -entries.c.amount), else_=0)),
               func.sum(case((entries.c.amount > 0, entries.c.amount), else_=0)),
               accounts.c.balance)
        .join(entries, entries.c.account_id == accounts.c.id)
        .where(accounts.c.address.like("service:%"))
        .group_by(accounts.c.address, accounts.c.currency, accounts.c.balance))).all()
    volumes: dict[str, dict[str, dict[str, int]]] = {}
    for label, since in (("24h", now - timedelta(hours=24)), ("7d", now - timedelta(days=7))):
        rows = (await conn.execute(
            select(_tx_amounts.c.currency, transactions.c.kind,
                   func.sum(_tx_amounts.c.amount), func.count())
            .join(transactions, transactions.c.id == _tx_amounts.c.transaction_id)
            .where(transactions.c.created_at >= since)
            .group_by(_tx_amounts.c.currency, transactions.c.kind))).all()
        for r in rows:
            currency, kind, total, n = r[0], r[1], int(r[2]), int(r[3])
            volumes.setdefault(currency, {}).setdefault(label, {})[kind] = total
            volumes[currency].setdefault(f"{label}_count", {})[kind] = n
    users = (await conn.execute(
        select(func.count(func.distinct(accounts.c.address)))
        .where(user_wallet, accounts.c.address.not_like("user:%:%")))).scalar_one()
    for c in currencies:
        out["currencies"][c] = {
            "in_user_wallets": int(in_wallets.get(c) or 0),
            "held": int(held.get(c) or 0),
            "services": {
                address.removeprefix("service:"): {
                    "issued": int(issued), "collected": int(collected), "balance": int(bal)}
                for address, currency, issued, collected, bal in services if currency == c
            },
            "volume_24h": volumes.get(c, {}).get("24h", {}),
            "volume_7d": volumes.get(c, {}).get("7d", {}),
            "count_24h": volumes.get(c, {}).get("24h_count", {}),
            "count_7d": volumes.get(c, {}).get("7d_count", {}),
        }
    out["users_with_wallet"] = int(users)
    return out


async def audit_page(conn: AsyncConnection, *, actor: str | None, action: str | None,
                     before: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
    stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit + 1)
    if actor:
        stmt = stmt.where(audit_log.c.actor == actor)
    if action:
        stmt = stmt.where(audit_log.c.action == action)
    if before is not None:
        stmt = stmt.where(audit_log.c.id < before)
    rows = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [{"id": str(r.id), "at": _iso(r.at), "actor": r.actor, "actor_role": r.actor_role,
             "action": r.action, "target": r.target, "details": orjson.loads(r.details_json),
             "ip": r.ip} for r in rows], (rows[-1].id if more else None)


async def gift_report(conn: AsyncConnection, *, from_user_id: str | None,
                      to_user_id: str | None, agency_id: str | None, gift_type: str | None,
                      created_from: datetime | None, created_to: datetime | None,
                      before: str | None, limit: int) -> dict[str, Any]:
    conds: list[Any] = []
    for column, value in ((gifts.c.from_user_id, from_user_id), (gifts.c.to_user_id, to_user_id),
                          (gifts.c.agency_id, agency_id), (gifts.c.gift_type, gift_type)):
        if value is not None:
            conds.append(column == value)
    if created_from:
        conds.append(gifts.c.created_at >= created_from)
    if created_to:
        conds.append(gifts.c.created_at < created_to)
    stmt = select(gifts).where(*conds).order_by(gifts.c.id.desc()).limit(limit + 1)
    if before:
        stmt = stmt.where(gifts.c.id < before)
    rows = (await conn.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]

    async def totals(column: Any, name: str) -> list[dict[str, Any]]:
        res = (await conn.execute(
            select(column, gifts.c.currency, func.count(), func.sum(gifts.c.amount),
                   func.sum(gifts.c.receiver_amount), func.sum(gifts.c.agency_amount),
                   func.sum(gifts.c.platform_fee))
            .where(*conds).group_by(column, gifts.c.currency)
            .order_by(column, gifts.c.currency))).all()
        return [{name: r[0], "currency": r[1], "count": int(r[2]), "amount": int(r[3]),
                 "receiver_amount": int(r[4]), "agency_commission": int(r[5]),
                 "platform_fee": int(r[6])} for r in res]

    from coinpurse.gifts.service import gift_view

    return {
        "data": [gift_view(r) for r in rows],
        "next_id": rows[-1].id if more else None,
        "totals_by_gift_type": await totals(gifts.c.gift_type, "gift_type"),
        "totals_by_receiver": await totals(gifts.c.to_user_id, "to_user_id"),
        "totals_by_agency": await totals(gifts.c.agency_id, "agency_id"),
    }
