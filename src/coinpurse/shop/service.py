"""The shop's rules: products, and orders paid from the buyer's wallet, exactly once.

A purchase is one ledger job. Its ``prepare`` hook runs inside the batch's database
transaction, after the batch has locked the buyer's, the merchant's and the fee account
(sorted, with every other account of the batch); it then locks the product's row
(``SELECT ... FOR UPDATE``) and decides: product live, not the buyer's own, price as
expected, stock left after this batch's earlier sales, the buyer's available balance. It
changes nothing itself: a statement run in ``prepare`` would stay even if the engine then
refused the job. The stock decrement, the order row and the ``order.paid`` event are the
job's side writes, written only if its transaction posted, in the same commit. So a sale
is all of it or none of it, and retries replay the stored answer (idempotency claim
scoped to the buyer).

Lock order. Batches lock accounts first, in one global order; a product row is locked only
by a batch that has already locked the fee account of the product's currency (every order
and refund declares it, even when the fee is 0). Two batches that would lock the same
product therefore queue on that account before either touches a product row, so product
locks cannot deadlock whatever order the jobs of a batch come in. Product edits lock only
the product's row and wait for nothing else while they hold it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.bonuses import service as bonuses
from coinpurse.bonuses.settings import BonusSettings
from coinpurse.core.clock import utcnow
from coinpurse.core.errors import Forbidden, NotFound, ValidationFailed, field_error
from coinpurse.core.ids import new_id
from coinpurse.core.types import AMOUNT_MAX
from coinpurse.events.service import event_write
from coinpurse.ledger.errors import InsufficientFunds
from coinpurse.ledger.idempotency import StoredResponse, claim
from coinpurse.ledger.model import (
    AccountKey,
    AccountState,
    Balance,
    Operation,
    Outcome,
    Posting,
    Rejection,
    Transaction,
    TransactionSpec,
)
from coinpurse.ledger.service import JobResult, Ledger, RowInserts, SqlWrite
from coinpurse.ledger.views import rejection_problem
from coinpurse.shop import repository as repo
from coinpurse.shop.errors import (
    OrderRefunded,
    OutOfStock,
    OwnProduct,
    PreconditionFailed,
    PriceChanged,
    ProductInactive,
    RefundExceedsPaid,
)
from coinpurse.shop.model import (
    Actor,
    Order,
    OrderFilter,
    Page,
    Product,
    ProductFilter,
    Refund,
    RefundShare,
    SalesTotal,
    order_fee,
    refund_share,
)
from coinpurse.shop.schemas import RefundCreatedOut, ShopOrderCreatedOut, ShopOrderOut
from coinpurse.shop.settings import ShopSettings

SERVICE = "shop"  # the transactions' service, for operators' filters


@dataclass(frozen=True, slots=True)
class Shop:
    db: AsyncEngine
    ledger: Ledger
    settings: ShopSettings
    bonus: BonusSettings  # how a purchase spends cash and bonus money


# ---------------------------------------------------------------- products


async def create_product(shop: Shop, actor: Actor, *, name: str, description: str,
                         price: int, currency: str, stock: int, active: bool,
                         metadata: Mapping[str, Any]) -> Product:
    if actor.role != "merchant":
        raise Forbidden("only merchant accounts sell products", reason="merchant_required")
    shop.settings.currency(currency)
    if currency not in shop.settings.sellable:
        raise field_error("currency", f"products cannot be priced in {currency}; allowed: "
                          + ", ".join(sorted(shop.settings.sellable)), "currency_not_sellable")
    now = utcnow()
    product = Product(
        id=new_id(), merchant_id=actor.user_id, name=name, description=description,
        price=price, currency=currency, stock=stock, active=active, metadata=dict(metadata),
        version=1, created_at=now, updated_at=now, deleted_at=None)
    async with shop.db.begin() as conn:
        await repo.insert_product(conn, product)
    return product


async def public_product(db: AsyncEngine, product_id: str) -> Product:
    """A product of the catalog: active and not deleted."""
    async with db.connect() as conn:
        found = await repo.get_product(conn, product_id)
    if found is None or found.deleted_at is not None or not found.active:
        raise NotFound(f"no product {product_id!r} for sale")
    return found


async def catalog(db: AsyncEngine, f: ProductFilter, *, before: str | None,
                  limit: int) -> Page[Product]:
    async with db.connect() as conn:
        return await repo.list_products(conn, dataclasses.replace(f, include_inactive=False),
                                        before=before, limit=limit)


async def own_products(db: AsyncEngine, merchant_id: str, f: ProductFilter, *,
                       before: str | None, limit: int) -> Page[Product]:
    """A merchant's own products, inactive ones included (deleted ones are gone)."""
    f = dataclasses.replace(f, merchant_id=merchant_id, include_inactive=True)
    async with db.connect() as conn:
        return await repo.list_products(conn, f, before=before, limit=limit)


def _check_editor(actor: Actor, product: Product | None, product_id: str) -> Product:
    """The product's merchant or an admin; others learn only what the catalog shows."""
    if product is None or product.deleted_at is not None:
        raise NotFound(f"no product {product_id!r}")
    if product.merchant_id == actor.user_id or actor.admin:
        return product
    if actor.role == "admin":
        raise Forbidden("admins must sign in with two-factor authentication to change "
                        "products", reason="mfa_required")
    if not product.active:
        raise NotFound(f"no product {product_id!r}")
    raise Forbidden("only the product's merchant or an admin may change it")


def _check_if_match(product: Product, if_match: str | None) -> None:
    """``If-Match``: ``*`` or a list of strong entity tags, one of them the product's."""
    if if_match is None or if_match.strip() == "*":
        return
    tags = [t.strip() for t in if_match.split(",")]
    if product.etag not in tags:
        raise PreconditionFailed(f"the product is at {product.etag}; read it again",
                                 etag=product.etag)


async def update_product(shop: Shop, actor: Actor, product_id: str,
                         changes: dict[str, Any], if_match: str | None) -> Product:
    """Under the product's row lock: a sale in flight finishes first, and ``stock`` is the
    absolute number of units from then on (send If-Match to be sure of what it replaces)."""
    async with shop.db.begin() as conn:
        product = _check_editor(actor, await repo.get_product(conn, product_id, lock=True),
                                product_id)
        _check_if_match(product, if_match)
        await repo.change_product(conn, product_id, changes, utcnow())
        changed = await repo.get_product(conn, product_id)
    assert changed is not None
    return changed


async def delete_product(shop: Shop, actor: Actor, product_id: str,
                         if_match: str | None) -> None:
    """Soft: the product leaves the catalog and cannot be bought; its orders keep it."""
    async with shop.db.begin() as conn:
        product = _check_editor(actor, await repo.get_product(conn, product_id, lock=True),
                                product_id)
        _check_if_match(product, if_match)
        now = utcnow()
        await repo.change_product(conn, product_id, {"active": False, "deleted_at": now}, now)


# ---------------------------------------------------------------- paying


def buyer_accounts(buyer_id: str, currency: str,
                   bonus_keys: frozenset[AccountKey] = frozenset()) -> set[AccountKey]:
    """The accounts a purchase may take money from (to lock): the cash wallet, and the
    bonus wallet when the buyer had active bonuses as the order was queued
    (``bonuses.spend_keys``)."""
    return {(f"user:{buyer_id}", currency)} | {k for k in bonus_keys if k[1] == currency}


def _postings(legs: Sequence[tuple[str, str, int]], currency: str) -> tuple[Posting, ...]:
    return tuple(Posting(src, dst, amount, currency) for src, dst, amount in legs if amount > 0)


@dataclass(slots=True)
class _Purchase:
    """One order's job: what ``prepare`` decided, for the renderer and the side writes.
    ``prepare`` may run twice (a failed batch is re-run job by job): it starts afresh."""

    shop: Shop
    order_id: str
    buyer_id: str
    product_id: str
    quantity: int
    expected_unit_price: int | None
    bonus_keys: frozenset[AccountKey] = frozenset()
    draft: Order | None = None
    book: bonuses.BonusBook | None = None  # the buyer's bonuses, when they pay too
    spend: bonuses.Spend | None = None  # how much came from cash, how much from bonus
    cash_before: Balance | None = None  # the buyer's cash, if the bonus paid it all

    @property
    def fee_address(self) -> str:
        return self.shop.settings.shop_fee_address

    def lock_keys(self, product: Product | None) -> frozenset[AccountKey]:
        if product is None or product.merchant_id == self.buyer_id:
            return frozenset()  # refused in prepare; nothing to lock
        cur = product.currency
        return frozenset(buyer_accounts(self.buyer_id, cur, self.bonus_keys)
                         | {(f"user:{product.merchant_id}", cur), (self.fee_address, cur)})

    async def prepare(self, conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> Sequence[Operation] | Rejection:
        self.draft = self.book = self.spend = None
        product = await repo.get_product(conn, self.product_id, lock=True)
        if product is None or product.deleted_at is not None:
            return Rejection.of(NotFound(f"no product {self.product_id!r} for sale"))
        if product.merchant_id == self.buyer_id:
            return Rejection.of(OwnProduct("this product is yours"))
        if not self.lock_keys(product) <= states.keys():  # unknown when the job was queued
            return Rejection.of(NotFound(f"no product {self.product_id!r} for sale"))
        if not product.active:
            return Rejection.of(ProductInactive("this product is not for sale right now"))
        if self.expected_unit_price is not None and self.expected_unit_price != product.price:
            return Rejection.of(PriceChanged(
                f"the product now costs {product.price} {product.currency}, not "
                f"{self.expected_unit_price}; nothing was charged", unit_price=product.price,
                currency=product.currency))
        left = product.stock - repo.stock_taken(pending, product.id)
        if left < self.quantity:
            return Rejection.of(OutOfStock(
                f"{max(left, 0)} left, {self.quantity} asked; nothing was charged",
                stock=max(left, 0)))
        amount = product.price * self.quantity
        if amount > AMOUNT_MAX:
            return Rejection.of(field_error(
                "quantity", "the price times the quantity is beyond 2^63-1", "amount_overflow"))
        merchant = f"user:{product.merchant_id}"
        # Cash and bonus money, in the currency's spend order (bonus only if its wallet is
        # locked: the buyer had active bonuses when the order was queued).
        book = await bonuses.load_book(conn, pending, self.shop.bonus, states, self.buyer_id,
                                       product.currency)
        spend = book.spend(states, amount, merchant, use_bonus=True,
                           reference_id=self.order_id)
        if isinstance(spend, Rejection):
            return spend
        fee = order_fee(amount, self.shop.settings.shop_fee_bp)
        spec = TransactionSpec(
            kind="purchase",
            postings=(*spend.postings,
                      *_postings([(merchant, self.fee_address, fee)], product.currency)),
            description=f"Purchase: {product.name}" + (
                f" x{self.quantity}" if self.quantity > 1 else ""),
            reference_id=self.order_id,
            initiator=f"user:{self.buyer_id}",
            metadata={"order_id": self.order_id, "product_id": product.id,
                      "quantity": self.quantity, "unit_price": product.price},
            service=SERVICE,
        )
        self.draft = Order(
            id=self.order_id, buyer_id=self.buyer_id, merchant_id=product.merchant_id,
            product_id=product.id, product_name=product.name, quantity=self.quantity,
            unit_price=product.price, currency=product.currency, amount=amount, fee=fee,
            refunded_amount=0, refunded_fee=0, restocked_quantity=0, status="paid",
            transaction_id="", created_at=utcnow(), updated_at=utcnow())
        book.carried_by(spec)
        cash = states[(f"user:{self.buyer_id}", product.currency)]
        self.book, self.spend = book, spend
        self.cash_before = Balance(cash.balance, cash.held, cash.version)
        return [spec]

    def _order(self, outcomes: list[Outcome]) -> tuple[Order, Transaction] | None:
        """The order, if its transaction posted."""
        if self.draft is None or len(outcomes) != 1 or not isinstance(outcomes[0], Transaction):
            return None
        tx = outcomes[0]
        order = dataclasses.replace(self.draft, transaction_id=tx.id,
                                    created_at=tx.created_at, updated_at=tx.created_at)
        return order, tx

    def render(self, outcomes: list[Outcome]) -> StoredResponse:
        done = self._order(outcomes)
        if done is None:
            refusal = next(o for o in outcomes if isinstance(o, Rejection))
            return rejection_problem(refusal)
        order, tx = done
        assert self.spend is not None and self.cash_before is not None
        wallet = tx.balances_after.get((f"user:{self.buyer_id}", order.currency),
                                       self.cash_before)
        body = ShopOrderCreatedOut.created(order, wallet, from_cash=self.spend.from_cash,
                                           from_bonus=self.spend.from_bonus).answer()
        return StoredResponse(201, orjson.dumps(body))

    def side_writes(self, outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        done = self._order(outcomes)
        if done is None:
            return []
        order, tx = done
        assert self.book is not None
        return [repo.new_order(order),
                repo.take_stock(order.product_id, order.quantity, tx.created_at),
                event_write("order.paid", ShopOrderOut.of(order).answer()),
                *self.book.writes(outcomes)]


async def place_order(shop: Shop, buyer_id: str, idem: str, *, product_id: str,
                      quantity: int, expected_unit_price: int | None) -> JobResult:
    """Buy ``quantity`` units: 201 with the order and the buyer's wallet, or the problem
    that refused it; either is stored with the idempotency key in the same commit."""
    limit = shop.settings.shop_quantity_max
    if quantity > limit:
        raise field_error("quantity", f"at most {limit} units per order", "less_than_equal")
    async with shop.db.connect() as conn:
        product = await repo.get_product(conn, product_id)  # which accounts to lock
    bonus_keys = (await bonuses.spend_keys(shop.db, buyer_id, product.currency)
                  if product is not None else frozenset())
    job = _Purchase(shop, new_id(), buyer_id, product_id, quantity, expected_unit_price,
                    bonus_keys)
    payload = {"product_id": product_id, "quantity": quantity,
               "expected_unit_price": expected_unit_price}
    return await shop.ledger.submit(
        [], render=job.render, claim=claim(f"user:{buyer_id}", idem, "order", payload),
        prepare=job.prepare, side_writes=job.side_writes, lock_keys=job.lock_keys(product))


# ---------------------------------------------------------------- refunds


@dataclass(slots=True)
class _Refund:
    shop: Shop
    actor: Actor
    order: Order  # as read before the batch: who, what, which accounts
    amount: int | None
    restock: bool
    reason: str
    refund_id: str
    bonus_keys: frozenset[AccountKey] = frozenset()  # when the purchase spent bonus money
    decided: tuple[Order, Refund] | None = None  # the order after it, the refund (no tx yet)
    split: bonuses.RefundSplit | None = None  # its bonus part, back to the bonuses

    def lock_keys(self) -> frozenset[AccountKey]:
        cur = self.order.currency
        return frozenset({(f"user:{self.order.merchant_id}", cur),
                          (f"user:{self.order.buyer_id}", cur),
                          (self.shop.settings.shop_fee_address, cur)}) | self.bonus_keys

    async def prepare(self, conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> Sequence[Operation] | Rejection:
        """Under the order's row lock, counting this batch's earlier refunds of it."""
        self.decided = self.split = None
        locked = await repo.get_order(conn, self.order.id, lock=True)
        assert locked is not None  # orders are never deleted
        earlier = repo.refunded_in_batch(pending, locked.id)
        current = dataclasses.replace(
            locked, refunded_amount=locked.refunded_amount + earlier.amount,
            refunded_fee=locked.refunded_fee + earlier.fee,
            restocked_quantity=locked.restocked_quantity + earlier.restock_quantity)
        if current.refundable == 0:
            return Rejection.of(OrderRefunded("this order has been refunded in full"))
        amount = current.refundable if self.amount is None else self.amount
        if amount > current.refundable:
            return Rejection.of(RefundExceedsPaid(
                f"{current.refundable} {current.currency} of this order can still be "
                f"refunded, not {amount}", refundable=current.refundable))
        share = refund_share(current, amount, restock=self.restock)
        merchant = f"user:{current.merchant_id}"
        available = states[(merchant, current.currency)].available
        if available < amount - share.fee:
            return Rejection.of(InsufficientFunds(
                f"the merchant's wallet has {max(available, 0)} {current.currency} "
                f"available; this refund takes {amount - share.fee} from it"))
        buyer, fees = f"user:{current.buyer_id}", self.shop.settings.shop_fee_address
        # What the purchase took from bonus goes back to bonus (pro rata), never to cash.
        split = await bonuses.refund_split(
            conn, pending, self.shop.bonus, states, buyer_id=current.buyer_id,
            currency=current.currency, order_id=current.id,
            purchase_transaction_id=current.transaction_id, order_amount=current.amount,
            refunded_before=current.refunded_amount, amount=amount)
        spec = TransactionSpec(
            kind="refund",
            postings=split.postings([(merchant, amount - share.fee), (fees, share.fee)],
                                    buyer, current.currency),
            description=f"Refund: {current.product_name}",
            reference_id=current.id,
            initiator=self.actor.initiator,
            metadata={"order_id": current.id, "refund_id": self.refund_id},
            service=SERVICE,
            internal_notes=self.reason,
        )
        now = utcnow()
        refund = Refund(
            id=self.refund_id, order_id=current.id, product_id=current.product_id,
            amount=amount, fee=share.fee, restock_quantity=share.restock_quantity,
            reason=self.reason, refunded_by=self.actor.initiator, transaction_id="",
            created_at=now)
        self.decided = (current.after_refund(share, now), refund)
        split.book.carried_by(spec)
        self.split = split
        return [spec]

    def _done(self, outcomes: list[Outcome]) -> tuple[Order, Refund] | None:
        if self.decided is None or len(outcomes) != 1 \
                or not isinstance(outcomes[0], Transaction):
            return None
        tx = outcomes[0]
        order, refund = self.decided
        return (dataclasses.replace(order, updated_at=tx.created_at),
                dataclasses.replace(refund, transaction_id=tx.id, created_at=tx.created_at))

    def render(self, outcomes: list[Outcome]) -> StoredResponse:
        done = self._done(outcomes)
        if done is None:
            return rejection_problem(next(o for o in outcomes if isinstance(o, Rejection)))
        order, refund = done
        return StoredResponse(201, orjson.dumps(RefundCreatedOut.created(refund, order).answer()))

    def side_writes(self, outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        done = self._done(outcomes)
        if done is None:
            return []
        order, refund = done
        share = RefundShare(refund.amount, refund.fee, refund.restock_quantity)
        writes: list[RowInserts | SqlWrite] = [
            repo.new_refund(refund), repo.add_refund(order.id, share, refund.created_at)]
        if refund.restock_quantity:
            writes.append(repo.put_back(order.product_id, refund.restock_quantity,
                                        refund.created_at))
        writes.append(event_write("order.refunded", RefundCreatedOut.created(refund, order)
                                  .answer()))
        assert self.split is not None
        return [*writes, *self.split.book.writes(outcomes)]


async def refund(shop: Shop, actor: Actor, idem: str, order_id: str, *, amount: int | None,
                 restock: bool, reason: str) -> JobResult:
    """By the order's merchant or an admin: full (default) or partial, at most what is
    left of the payment; the merchant pays back its share, the fee account the fee."""
    order = await _read_order(shop.db, order_id)
    if order is None:
        raise NotFound(f"no order {order_id!r}")
    if actor.user_id != order.merchant_id and not actor.admin:
        if actor.user_id == order.buyer_id or actor.reader:
            raise Forbidden("only the order's merchant or an admin may refund it")
        raise NotFound(f"no order {order_id!r}")
    bonus_keys = await bonuses.refund_keys(shop.db, shop.bonus, order.buyer_id,
                                           order.currency, order.transaction_id)
    job = _Refund(shop, actor, order, amount, restock, reason, new_id(), bonus_keys)
    payload = {"order_id": order_id, "amount": amount, "restock": restock, "reason": reason}
    # A refusal is not stored: after a top-up of the merchant's wallet the same key works.
    return await shop.ledger.submit(
        [], render=job.render, claim=claim(f"user:{actor.user_id}", idem, "refund", payload),
        prepare=job.prepare, side_writes=job.side_writes, lock_keys=job.lock_keys(),
        store_refusals=False)


# ---------------------------------------------------------------- reading orders


async def _read_order(db: AsyncEngine, order_id: str) -> Order | None:
    async with db.connect() as conn:
        return await repo.get_order(conn, order_id)


async def order_for(db: AsyncEngine, actor: Actor, order_id: str) -> tuple[Order, list[Refund]]:
    """Its buyer, its merchant, admins and auditors see an order; for anyone else it does
    not exist."""
    async with db.connect() as conn:
        order = await repo.get_order(conn, order_id)
        if order is None or (actor.user_id not in (order.buyer_id, order.merchant_id)
                             and not actor.reader):
            raise NotFound(f"no order {order_id!r}")
        return order, await repo.refunds_of(conn, order_id)


async def list_orders(db: AsyncEngine, f: OrderFilter, *, before: str | None,
                      limit: int) -> Page[Order]:
    async with db.connect() as conn:
        return await repo.list_orders(conn, f, before=before, limit=limit)


async def sales(db: AsyncEngine, merchant_id: str, f: OrderFilter, *, before: str | None,
                limit: int) -> tuple[Page[Order], list[SalesTotal]]:
    f = dataclasses.replace(f, merchant_id=merchant_id, buyer_id=None)
    async with db.connect() as conn:
        page = await repo.list_orders(conn, f, before=before, limit=limit)
        return page, await repo.sales_totals(conn, f)


def order_filter(**values: Any) -> OrderFilter:
    """A filter of orders; a period must end after it starts."""
    f = OrderFilter(**values)
    if f.created_from and f.created_to and f.created_from >= f.created_to:
        raise ValidationFailed("created_to must be after created_from", [
            {"loc": ["query", "created_to"], "msg": "must be after created_from",
             "type": "value_error"}])
    return f
