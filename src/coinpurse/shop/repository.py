"""The only SQL on the shop's tables: products, orders and refunds.

Writes that must commit with a money movement are returned as the ledger's side writes
(``RowInserts`` that later jobs of the same batch can see, ``SqlWrite`` statements); each
statement checks that it changed the one row it meant to, and raises otherwise, so a
decision that no longer holds fails the whole batch (which the ledger re-runs job by job)
instead of committing money without its stock or its order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.ledger.service import RowInserts, SqlWrite
from coinpurse.shop.model import (
    Order,
    OrderFilter,
    Page,
    Product,
    ProductFilter,
    Refund,
    RefundShare,
    SalesTotal,
)
from coinpurse.shop.tables import order_refunds, orders, products

p = products.c
o = orders.c
r = order_refunds.c


class StaleWrite(RuntimeError):
    """A side write found its row not as its job decided: the batch must not commit."""


# ---------------------------------------------------------------- products


def _product(row: Row[Any]) -> Product:
    return Product(
        id=row.id, merchant_id=row.merchant_id, name=row.name, description=row.description,
        price=row.price, currency=row.currency, stock=row.stock, active=bool(row.active),
        metadata=orjson.loads(row.metadata_json), version=row.version,
        created_at=row.created_at, updated_at=row.updated_at, deleted_at=row.deleted_at)


async def insert_product(conn: AsyncConnection, product: Product) -> None:
    await conn.execute(products.insert().values(
        id=product.id, merchant_id=product.merchant_id, name=product.name,
        description=product.description, price=product.price, currency=product.currency,
        stock=product.stock, active=product.active,
        metadata_json=orjson.dumps(dict(product.metadata)).decode(), version=product.version,
        created_at=product.created_at, updated_at=product.updated_at, deleted_at=None))


async def get_product(conn: AsyncConnection, product_id: str, *,
                      lock: bool = False) -> Product | None:
    """A product, deleted ones included; ``lock``: hold its row until the transaction ends
    (``SELECT ... FOR UPDATE``; SQLite has one writer at a time anyway)."""
    stmt = select(products).where(p.id == product_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return _product(row) if row is not None else None


async def change_product(conn: AsyncConnection, product_id: str, values: dict[str, Any],
                         at: datetime) -> None:
    """Change a product (locked by the caller) and bump its version."""
    values = dict(values)
    if "metadata" in values:
        values["metadata_json"] = orjson.dumps(values.pop("metadata")).decode()
    await conn.execute(update(products).where(p.id == product_id)
                       .values(**values, version=p.version + 1, updated_at=at))


async def list_products(conn: AsyncConnection, f: ProductFilter, *, before: str | None,
                        limit: int) -> Page[Product]:
    """Newest first. Without ``include_inactive``: the catalog, active products only."""
    stmt = select(products).where(p.deleted_at.is_(None))
    if not f.include_inactive:
        stmt = stmt.where(p.active.is_(True))
    elif f.active is not None:
        stmt = stmt.where(p.active.is_(f.active))
    if f.merchant_id is not None:
        stmt = stmt.where(p.merchant_id == f.merchant_id)
    if f.q:
        stmt = stmt.where(p.name.icontains(f.q, autoescape=True))
    if f.min_price is not None:
        stmt = stmt.where(p.price >= f.min_price)
    if f.max_price is not None:
        stmt = stmt.where(p.price <= f.max_price)
    if f.currency is not None:
        stmt = stmt.where(p.currency == f.currency)
    if f.in_stock is not None:
        stmt = stmt.where(p.stock > 0 if f.in_stock else p.stock == 0)
    if before is not None:
        stmt = stmt.where(p.id < before)
    rows = (await conn.execute(stmt.order_by(p.id.desc()).limit(limit + 1))).all()
    found = [_product(row) for row in rows[:limit]]
    return Page(found, found[-1].id if len(rows) > limit else None)


def take_stock(product_id: str, quantity: int, at: datetime) -> SqlWrite:
    """A sale's stock decrement; never below zero (the row, and a CHECK, say so)."""

    async def run(conn: AsyncConnection) -> None:
        done = await conn.execute(
            update(products).where(p.id == product_id, p.stock >= quantity)
            .values(stock=p.stock - quantity, version=p.version + 1, updated_at=at))
        if done.rowcount != 1:
            raise StaleWrite(f"product {product_id} has less than {quantity} in stock")

    return run


def put_back(product_id: str, quantity: int, at: datetime) -> SqlWrite:
    """A refund's restock."""

    async def run(conn: AsyncConnection) -> None:
        done = await conn.execute(
            update(products).where(p.id == product_id)
            .values(stock=p.stock + quantity, version=p.version + 1, updated_at=at))
        if done.rowcount != 1:
            raise StaleWrite(f"product {product_id} vanished")

    return run


def stock_taken(pending: Sequence[RowInserts], product_id: str) -> int:
    """Units of a product that this batch's earlier jobs sold, less those they restocked."""
    taken = 0
    for table, rows in pending:
        if table is orders:
            taken += sum(int(row["quantity"]) for row in rows if row["product_id"] == product_id)
        elif table is order_refunds:
            taken -= sum(int(row["restock_quantity"]) for row in rows
                         if row["product_id"] == product_id)
    return taken


# ---------------------------------------------------------------- orders


def _order(row: Row[Any]) -> Order:
    return Order(
        id=row.id, buyer_id=row.buyer_id, merchant_id=row.merchant_id,
        product_id=row.product_id, product_name=row.product_name, quantity=row.quantity,
        unit_price=row.unit_price, currency=row.currency, amount=row.amount, fee=row.fee,
        refunded_amount=row.refunded_amount, refunded_fee=row.refunded_fee,
        restocked_quantity=row.restocked_quantity, status=row.status,
        transaction_id=row.transaction_id, created_at=row.created_at,
        updated_at=row.updated_at)


def new_order(order: Order) -> RowInserts:
    """A paid order, inserted in the same commit as its transaction."""
    return (orders, [{
        "id": order.id, "buyer_id": order.buyer_id, "merchant_id": order.merchant_id,
        "product_id": order.product_id, "product_name": order.product_name,
        "quantity": order.quantity, "unit_price": order.unit_price,
        "currency": order.currency, "amount": order.amount, "fee": order.fee,
        "refunded_amount": order.refunded_amount, "refunded_fee": order.refunded_fee,
        "restocked_quantity": order.restocked_quantity, "status": order.status,
        "transaction_id": order.transaction_id, "created_at": order.created_at,
        "updated_at": order.updated_at}])


async def get_order(conn: AsyncConnection, order_id: str, *,
                    lock: bool = False) -> Order | None:
    stmt = select(orders).where(o.id == order_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return _order(row) if row is not None else None


def _order_where(f: OrderFilter) -> list[Any]:
    conds: list[Any] = []
    for column, value in ((o.buyer_id, f.buyer_id), (o.merchant_id, f.merchant_id),
                          (o.product_id, f.product_id), (o.status, f.status),
                          (o.currency, f.currency)):
        if value is not None:
            conds.append(column == value)
    if f.created_from is not None:
        conds.append(o.created_at >= f.created_from)
    if f.created_to is not None:
        conds.append(o.created_at < f.created_to)
    return conds


async def list_orders(conn: AsyncConnection, f: OrderFilter, *, before: str | None,
                      limit: int) -> Page[Order]:
    stmt = select(orders).where(*_order_where(f))
    if before is not None:
        stmt = stmt.where(o.id < before)
    rows = (await conn.execute(stmt.order_by(o.id.desc()).limit(limit + 1))).all()
    found = [_order(row) for row in rows[:limit]]
    return Page(found, found[-1].id if len(rows) > limit else None)


async def sales_totals(conn: AsyncConnection, f: OrderFilter) -> list[SalesTotal]:
    """Per product and currency, over every order of the filter (not only one page)."""
    rows = (await conn.execute(
        select(o.product_id, p.name, o.currency, func.count(), func.sum(o.quantity),
               func.sum(o.amount), func.sum(o.fee), func.sum(o.refunded_amount),
               func.sum(o.refunded_fee), func.sum(o.restocked_quantity))
        .join(products, p.id == o.product_id)
        .where(*_order_where(f))
        .group_by(o.product_id, p.name, o.currency)
        .order_by(o.product_id, o.currency))).all()
    return [SalesTotal(row[0], row[1], row[2], *(int(v) for v in row[3:])) for row in rows]


# ---------------------------------------------------------------- refunds


def _refund(row: Row[Any]) -> Refund:
    return Refund(
        id=row.id, order_id=row.order_id, product_id=row.product_id, amount=row.amount,
        fee=row.fee, restock_quantity=row.restock_quantity, reason=row.reason,
        refunded_by=row.refunded_by, transaction_id=row.transaction_id,
        created_at=row.created_at)


def new_refund(refund: Refund) -> RowInserts:
    return (order_refunds, [{
        "id": refund.id, "order_id": refund.order_id, "product_id": refund.product_id,
        "amount": refund.amount, "fee": refund.fee,
        "restock_quantity": refund.restock_quantity, "reason": refund.reason,
        "refunded_by": refund.refunded_by, "transaction_id": refund.transaction_id,
        "created_at": refund.created_at}])


def refunded_in_batch(pending: Sequence[RowInserts], order_id: str) -> RefundShare:
    """What this batch's earlier jobs refunded of an order (not in its row yet)."""
    amount = fee = units = 0
    for table, rows in pending:
        if table is order_refunds:
            for row in rows:
                if row["order_id"] == order_id:
                    amount += int(row["amount"])
                    fee += int(row["fee"])
                    units += int(row["restock_quantity"])
    return RefundShare(amount, fee, units)


def add_refund(order_id: str, share: RefundShare, at: datetime) -> SqlWrite:
    """Count a refund in its order: running totals, and the status they make."""

    async def run(conn: AsyncConnection) -> None:
        refunded = o.refunded_amount + share.amount
        done = await conn.execute(
            update(orders).where(o.id == order_id, refunded <= o.amount)
            .values(refunded_amount=refunded, refunded_fee=o.refunded_fee + share.fee,
                    restocked_quantity=o.restocked_quantity + share.restock_quantity,
                    status=case((refunded == o.amount, "refunded"),
                                else_="partially_refunded"),
                    updated_at=at))
        if done.rowcount != 1:
            raise StaleWrite(f"order {order_id} cannot take a refund of {share.amount}")

    return run


async def refunds_of(conn: AsyncConnection, order_id: str) -> list[Refund]:
    rows = (await conn.execute(select(order_refunds).where(r.order_id == order_id)
                               .order_by(r.id))).all()
    return [_refund(row) for row in rows]
