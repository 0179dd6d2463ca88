"""The only SQL on the payment tables: orders, the webhook inbox, and users' debts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.clock import utcnow
from coinpurse.core.db import insert
from coinpurse.core.pages import newest_first
from coinpurse.ledger.service import RowInserts, SqlWrite
from coinpurse.payments.model import CREDITED, OPEN, InboxEvent, OrderPlan, PaymentOrder, Price
from coinpurse.payments.tables import payment_orders, user_debts, webhook_inbox

# ---------------------------------------------------------------- orders

orders = payment_orders.c


def _order(row: Row[Any]) -> PaymentOrder:
    return PaymentOrder(
        id=row.id, user_id=row.user_id, status=row.status, provider=row.provider,
        package_id=row.package_id, currency=row.currency, amount=row.amount, bonus=row.bonus,
        price=Price(row.price, row.price_currency), checkout_url=row.checkout_url,
        client_params=orjson.loads(row.client_params_json) if row.client_params_json
        else None,
        transaction_id=row.credit_transaction_id,
        reversal_transaction_id=row.reversal_transaction_id,
        reversed_amount=row.reversed_amount, debt_amount=row.debt_amount,
        created_at=row.created_at, updated_at=row.updated_at, expires_at=row.expires_at,
        paid_at=row.paid_at, reversed_at=row.reversed_at,
        provider_order_id=row.provider_order_id, provider_payment_id=row.provider_payment_id,
        error=row.error, request_hash=row.request_hash)


async def _one_order(conn: AsyncConnection, *where: Any) -> PaymentOrder | None:
    row = (await conn.execute(select(payment_orders).where(*where))).first()
    return _order(row) if row is not None else None


async def get_order(conn: AsyncConnection, order_id: str) -> PaymentOrder | None:
    return await _one_order(conn, orders.id == order_id)


async def order_by_key(conn: AsyncConnection, user_id: str, idem: str) -> PaymentOrder | None:
    return await _one_order(conn, orders.user_id == user_id, orders.idempotency_key == idem)


async def order_by_provider_order(conn: AsyncConnection, provider: str,
                                  provider_order_id: str) -> PaymentOrder | None:
    return await _one_order(conn, orders.provider == provider,
                            orders.provider_order_id == provider_order_id)


async def order_by_provider_payment(conn: AsyncConnection, provider: str,
                                    provider_payment_id: str) -> PaymentOrder | None:
    return await _one_order(conn, orders.provider == provider,
                            orders.provider_payment_id == provider_payment_id)


async def insert_order(conn: AsyncConnection, *, order_id: str, user_id: str, provider: str,
                       plan: OrderPlan, idem: str, request_hash: str, now: datetime,
                       expires_at: datetime) -> None:
    await conn.execute(payment_orders.insert().values(
        id=order_id, user_id=user_id, provider=provider, package_id=plan.package_id,
        currency=plan.currency, amount=plan.amount, bonus=plan.bonus, price=plan.price.amount,
        price_currency=plan.price.currency, status="created", idempotency_key=idem,
        request_hash=request_hash, created_at=now, updated_at=now, expires_at=expires_at))


async def set_checkout(conn: AsyncConnection, order_id: str, *, provider_order_id: str,
                       checkout_url: str | None, client_params: dict[str, Any]) -> None:
    """Record the provider's checkout, unless an earlier attempt already did."""
    await conn.execute(update(payment_orders).where(
        orders.id == order_id, orders.provider_order_id.is_(None)).values(
        provider_order_id=provider_order_id, checkout_url=checkout_url,
        client_params_json=orjson.dumps(client_params).decode(), updated_at=utcnow()))


def order_write(order_id: str, **values: Any) -> SqlWrite:
    """An order's change, to run in the ledger batch that moves its money."""

    async def run(conn: AsyncConnection) -> None:
        await conn.execute(update(payment_orders).where(orders.id == order_id)
                           .values(**values, updated_at=utcnow()))

    return run


async def is_credited(conn: AsyncConnection, order_id: str) -> bool:
    value = (await conn.execute(select(orders.credit_transaction_id)
                                .where(orders.id == order_id))).scalar()
    return value is not None


async def is_reversed(conn: AsyncConnection, order_id: str) -> bool:
    value = (await conn.execute(select(orders.reversed_at)
                                .where(orders.id == order_id))).scalar()
    return value is not None


async def change_status(conn: AsyncConnection, order_id: str, status: str, *,
                        when: Sequence[str], credited: bool | None,
                        values: dict[str, Any]) -> bool:
    """Move an order in one of the ``when`` states to ``status``; ``credited``: only if it
    is (True: and not reversed) or is not (False) credited. False if nothing matched."""
    stmt = update(payment_orders).where(orders.id == order_id, orders.status.in_(when))
    if credited is True:
        stmt = stmt.where(orders.credit_transaction_id.is_not(None),
                          orders.reversed_at.is_(None))
    elif credited is False:
        stmt = stmt.where(orders.credit_transaction_id.is_(None))
    result = await conn.execute(stmt.values(status=status, updated_at=utcnow(), **values))
    return bool(result.rowcount)


async def list_orders(db: AsyncEngine, *, user_id: str | None, status: str | None,
                      provider: str | None, before: str | None, limit: int
                      ) -> tuple[list[PaymentOrder], str | None]:
    rows, next_id = await newest_first(
        db, payment_orders, equal={"user_id": user_id, "status": status, "provider": provider},
        before=before, limit=limit)
    return [_order(r) for r in rows], next_id


async def topups_since(conn: AsyncConnection, user_id: str, currency: str, since: datetime,
                       now: datetime) -> int:
    """What the user's orders since ``since`` credit or may still credit (paid, or open
    and not expired)."""
    open_or_paid = orders.status.in_(CREDITED) | (
        orders.status.in_(OPEN) & (orders.expires_at > now))
    return int((await conn.execute(
        select(func.coalesce(func.sum(orders.amount + orders.bonus), 0)).where(
            orders.user_id == user_id, orders.currency == currency, orders.created_at >= since,
            open_or_paid))).scalar_one())


async def open_total(conn: AsyncConnection, user_id: str, currency: str,
                     now: datetime) -> int:
    """What the user's open, unexpired orders would credit if paid."""
    return int((await conn.execute(
        select(func.coalesce(func.sum(orders.amount + orders.bonus), 0)).where(
            orders.user_id == user_id, orders.currency == currency, orders.status.in_(OPEN),
            orders.expires_at > now))).scalar_one())


# ---------------------------------------------------------------- debts

debts = user_debts.c


def debt_rows(rows: list[dict[str, Any]]) -> RowInserts:
    """Debt changes (+ left by a reversal, - repaid by a credit) for a ledger batch."""
    return (user_debts, rows)


def _pending_debts(pending: Sequence[RowInserts]) -> list[dict[str, Any]]:
    return [r for table, rows in pending if table is user_debts for r in rows]


async def debts_by_creditor(conn: AsyncConnection, user_id: str, currency: str,
                            pending: Sequence[RowInserts] = ()) -> dict[str, int]:
    """The sum of the user's debt rows per creditor: the database's, and those this
    batch's earlier jobs are about to insert."""
    rows = (await conn.execute(
        select(debts.creditor, func.sum(debts.amount))
        .where(debts.user_id == user_id, debts.currency == currency)
        .group_by(debts.creditor))).all()
    owed = {r[0]: int(r[1]) for r in rows}
    for r in _pending_debts(pending):
        if r["user_id"] == user_id and r["currency"] == currency:
            owed[r["creditor"]] = owed.get(r["creditor"], 0) + r["amount"]
    return owed


async def debt_total(conn: AsyncConnection, user_id: str,
                     pending: Sequence[RowInserts] = ()) -> int:
    total = int((await conn.execute(select(func.coalesce(func.sum(debts.amount), 0))
                                    .where(debts.user_id == user_id))).scalar_one())
    return total + sum(int(r["amount"]) for r in _pending_debts(pending)
                       if r["user_id"] == user_id)


# ---------------------------------------------------------------- the webhook inbox

events = webhook_inbox.c


def _event(row: Row[Any]) -> InboxEvent:
    return InboxEvent(
        id=row.id, provider=row.provider, event_id=row.event_id, event_type=row.event_type,
        status=row.status, attempts=row.attempts, next_attempt_at=row.next_attempt_at,
        last_error=row.last_error, order_id=row.order_id, received_at=row.received_at,
        processed_at=row.processed_at, raw_body=bytes(row.body))


async def insert_event(conn: AsyncConnection, *, provider: str, event_id: str,
                       event_type: str, body: bytes, status: str, error: str | None,
                       now: datetime) -> tuple[int, bool]:
    """Store an event unless the provider and event id are known; (its id, duplicate)."""
    inserted = await conn.execute(insert(conn, webhook_inbox).values(
        provider=provider, event_id=event_id, event_type=event_type, body=body,
        status=status, attempts=0, next_attempt_at=now, last_error=error, received_at=now,
    ).on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(events.id))
    new_id = inserted.scalar()
    if new_id is not None:
        return int(new_id), False
    known = (await conn.execute(select(events.id).where(
        events.provider == provider, events.event_id == event_id))).scalar_one()
    return int(known), True


def _due(now: datetime) -> Any:
    return (events.status == "received") & (events.next_attempt_at <= now) & or_(
        events.locked_until.is_(None), events.locked_until < now)


async def inbox_backlog(conn: AsyncConnection) -> tuple[int, datetime | None]:
    """Events received and not yet applied, and when the oldest of them arrived."""
    row = (await conn.execute(select(func.count(), func.min(events.received_at))
                              .where(events.status == "received"))).one()
    return int(row[0]), row[1]


async def due_event_ids(conn: AsyncConnection, now: datetime, limit: int) -> list[int]:
    return list((await conn.execute(select(events.id).where(_due(now)).order_by(events.id)
                                    .limit(limit))).scalars().all())


async def lease_event(conn: AsyncConnection, event_id: int, *, now: datetime,
                      until: datetime) -> InboxEvent | None:
    """Take the event if it is still due (counting the attempt); None if another worker
    has it."""
    got = await conn.execute(update(webhook_inbox).where(events.id == event_id, _due(now))
                             .values(locked_until=until, attempts=events.attempts + 1))
    if not got.rowcount:
        return None
    return await get_event(conn, event_id)


async def finish_event(conn: AsyncConnection, event_id: int, **values: Any) -> None:
    """Record an attempt's result and release the lease."""
    await conn.execute(update(webhook_inbox).where(events.id == event_id)
                       .values(locked_until=None, **values))


async def requeue_failed_event(conn: AsyncConnection, event_id: int, now: datetime) -> None:
    await conn.execute(update(webhook_inbox)
                       .where(events.id == event_id, events.status == "failed")
                       .values(status="received", next_attempt_at=now, attempts=0,
                               locked_until=None))


async def get_event(conn: AsyncConnection, event_id: int) -> InboxEvent | None:
    row = (await conn.execute(select(webhook_inbox).where(events.id == event_id))).first()
    return _event(row) if row is not None else None


async def list_events(db: AsyncEngine, *, status: str | None, provider: str | None,
                      before: int | None, limit: int) -> tuple[list[InboxEvent], int | None]:
    rows, next_id = await newest_first(db, webhook_inbox,
                                       equal={"status": status, "provider": provider},
                                       before=before, limit=limit)
    return [_event(r) for r in rows], next_id
