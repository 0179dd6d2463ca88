"""The shop: products (merchants sell, anybody browses), orders and refunds."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Path, Query
from starlette.responses import Response

from coinpurse.core import cursor
from coinpurse.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from coinpurse.core.pages import PAGE_MAX
from coinpurse.core.types import AMOUNT_MAX, USER_ID_RE, UtcDateTime
from coinpurse.http.deps import Admin, CurrentPrincipal, IdempotencyKey, State, UserId
from coinpurse.http.responses import json_response, problems, replay_response
from coinpurse.ledger.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientFunds,
    UnknownCurrency,
)
from coinpurse.shop import schemas as s
from coinpurse.shop import service as svc
from coinpurse.shop.errors import (
    OrderRefunded,
    OutOfStock,
    OwnProduct,
    PreconditionFailed,
    PriceChanged,
    ProductInactive,
    RefundExceedsPaid,
)
from coinpurse.shop.model import Actor, Order, ProductFilter
from coinpurse.shop.model import Page as DomainPage

router = APIRouter(tags=["shop"])
ProductPath = Annotated[str, Path(max_length=36, pattern=s.ID_PATTERN)]
OrderPath = Annotated[str, Path(max_length=36, pattern=s.ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX)]
Cursor = Annotated[str | None, Query(alias="cursor", max_length=96)]
PriceBound = Annotated[int | None, Query(ge=0, le=AMOUNT_MAX)]
Currency = Annotated[str | None, Query(max_length=16)]
NameQuery = Annotated[str | None, Query(min_length=1, max_length=100,
                                        description="Part of the name, any case.")]
Status = Literal["paid", "partially_refunded", "refunded"]
IfNoneMatch = Annotated[str | None, Header(max_length=2048, description=(
    "An ETag from an earlier answer: 304 Not Modified if it still holds."))]
IfMatch = Annotated[str | None, Header(max_length=2048, description=(
    'The product\'s ETag (`"v<version>"`) you based the change on: 412 '
    "`precondition_failed` if it changed since."))]
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the `If-None-Match` ETag still holds."}}
_ORDER_REFUSALS = (ValidationFailed, Unauthorized, NotFound, OwnProduct, ProductInactive,
                   PriceChanged, OutOfStock, InsufficientFunds, IdempotencyKeyReused,
                   IdempotencyKeyInUse)


def _shop(state: State) -> svc.Shop:
    return svc.Shop(state.db, state.ledger, state.settings, state.settings)


def _actor(state: State, principal: CurrentPrincipal) -> Actor:
    """Admins and auditors count as such only with 2FA where Coinpurse signs them in."""
    trusted = state.settings.auth != "builtin" or principal.mfa
    return Actor(principal.user_id, principal.role,
                 admin=principal.role == "admin" and trusted,
                 reader=principal.role in ("admin", "auditor") and trusted)


def _next(page: DomainPage[Any]) -> str | None:
    return cursor.encode_text(page.next_id) if page.next_id else None


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): W/ prefixes do not count."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in if_none_match.split(","))


def _cacheable(state: State, body: dict[str, Any], etag: str | None,
               if_none_match: str | None) -> Response:
    """A public answer with its ETag (the body's hash unless given) and Cache-Control."""
    raw = orjson.dumps(body)
    etag = etag or 'W/"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
    headers = {"ETag": etag,
               "Cache-Control": f"public, max-age={state.settings.shop_cache_max_age_s}"}
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


def _orders(page: DomainPage[Order]) -> s.ShopOrderPage:
    return s.ShopOrderPage(data=[s.ShopOrderOut.of(x) for x in page.data],
                           next_cursor=_next(page))


# ---------------------------------------------------------------- products


@router.post("/api/v1/products", status_code=201, response_model=s.ProductOut,
             responses=problems(ValidationFailed, Unauthorized, Forbidden, UnknownCurrency),
             summary="Put a product up for sale (merchants)")
async def create_product(body: s.ProductIn, principal: CurrentPrincipal,
                         state: State) -> Response:
    """Merchant accounts only (403 `forbidden` with `reason: merchant_required`): built-in
    accounts registered with `"account_type": "merchant"`, or tokens with `"role":
    "merchant"`. The answer carries the product's `ETag`."""
    product = await svc.create_product(
        _shop(state), _actor(state, principal), name=body.name, description=body.description,
        price=body.price, currency=body.currency, stock=body.stock, active=body.active,
        metadata=body.metadata)
    return json_response(s.ProductOut.of(product).answer(), 201, {"ETag": product.etag})


@router.get("/api/v1/products", response_model=s.ProductPage,
            responses={**NOT_MODIFIED, **problems(ValidationFailed, UnknownCurrency)},
            summary="The catalog: products for sale, newest first (public)")
async def list_products(
    state: State,
    merchant_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
    q: NameQuery = None,
    min_price: PriceBound = None,
    max_price: PriceBound = None,
    currency: Currency = None,
    in_stock: bool | None = None,
    limit: Limit = 50,
    cursor_: Cursor = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """No token needed. Active products only. Answers carry an `ETag` and
    `Cache-Control: public, max-age=COINPURSE_SHOP_CACHE_MAX_AGE_S`; send the ETag back in
    `If-None-Match` to get 304 Not Modified while the page is unchanged."""
    if currency is not None:
        state.settings.currency(currency)
    f = ProductFilter(merchant_id=merchant_id, q=q, min_price=min_price, max_price=max_price,
                      currency=currency, in_stock=in_stock)
    page = await svc.catalog(state.db, f, before=cursor.decode_text(cursor_), limit=limit)
    body = s.ProductPage(data=[s.ProductOut.of(p) for p in page.data], next_cursor=_next(page))
    return _cacheable(state, body.answer(), None, if_none_match)


@router.get("/api/v1/products/{product_id}", response_model=s.ProductOut,
            responses={**NOT_MODIFIED, **problems(ValidationFailed, NotFound)},
            summary="One product of the catalog (public)")
async def get_product(product_id: ProductPath, state: State,
                      if_none_match: IfNoneMatch = None) -> Response:
    """404 if it is not for sale (inactive or deleted). The `ETag` is `"v<version>"`."""
    product = await svc.public_product(state.db, product_id)
    return _cacheable(state, s.ProductOut.of(product).answer(), product.etag, if_none_match)


@router.patch("/api/v1/products/{product_id}", response_model=s.ProductOut,
              responses=problems(ValidationFailed, Unauthorized, Forbidden, NotFound,
                                 PreconditionFailed),
              summary="Change a product (its merchant or an admin)")
async def update_product(product_id: ProductPath, body: s.ProductPatchIn,
                         principal: CurrentPrincipal, state: State,
                         if_match: IfMatch = None) -> Response:
    """Only the fields sent change. `stock` is absolute: the units for sale from now on.
    A sale being paid at that moment finishes first (it holds the product's row); to be
    sure the stock you replace is the one you read, send its ETag in `If-Match` (412
    `precondition_failed` if a sale or an edit came between). Anyone else than the
    product's merchant or an admin gets 403 (404 for a product not in the catalog)."""
    product = await svc.update_product(_shop(state), _actor(state, principal), product_id,
                                       body.changes(), if_match)
    return json_response(s.ProductOut.of(product).answer(), headers={"ETag": product.etag})


@router.delete("/api/v1/products/{product_id}", status_code=204,
               responses=problems(ValidationFailed, Unauthorized, Forbidden, NotFound,
                                  PreconditionFailed),
               summary="Withdraw a product for good (its merchant or an admin)")
async def delete_product(product_id: ProductPath, principal: CurrentPrincipal, state: State,
                         if_match: IfMatch = None) -> Response:
    """Soft: it leaves the catalog and cannot be bought; its orders still show it."""
    await svc.delete_product(_shop(state), _actor(state, principal), product_id, if_match)
    return Response(status_code=204)


@router.get("/api/v1/merchant/products", response_model=s.ProductPage,
            responses=problems(ValidationFailed, Unauthorized),
            summary="The caller's own products, inactive ones included")
async def my_products(
    user_id: UserId, state: State,
    active: bool | None = None,
    q: NameQuery = None,
    currency: Currency = None,
    in_stock: bool | None = None,
    limit: Limit = 50,
    cursor_: Cursor = None,
) -> Response:
    """The products the caller sells, active or not (`active` filters), newest first, with
    cursor pages; `q` searches the name, `in_stock=true` leaves out sold-out ones."""
    f = ProductFilter(q=q, currency=currency, in_stock=in_stock, active=active)
    page = await svc.own_products(state.db, user_id, f, before=cursor.decode_text(cursor_),
                                  limit=limit)
    return json_response(s.ProductPage(data=[s.ProductOut.of(p) for p in page.data],
                                       next_cursor=_next(page)).answer())


# ---------------------------------------------------------------- orders


@router.post("/api/v1/orders", status_code=201, response_model=s.ShopOrderCreatedOut,
             responses=problems(*_ORDER_REFUSALS),
             summary="Buy a product with the wallet's money")
async def place_order(body: s.OrderIn, user_id: UserId, state: State,
                      idem: IdempotencyKey) -> Response:
    """One database transaction, or nothing: the stock goes down (never below zero), one
    ledger transaction (`kind: purchase`) moves `unit_price x quantity` from the buyer to
    the merchant and the platform's fee (`COINPURSE_SHOP_FEE_BP` of it, rounded down) from
    the merchant to `COINPURSE_SHOP_FEE_ADDRESS`, and the order is written `paid`.

    Refusals, in this order: 404 `not_found` (no such product, or deleted), 422
    `own_product`, 409 `product_inactive`, 409 `price_changed` (`expected_unit_price`
    differs; `unit_price` is the current one), 409 `out_of_stock` (`stock` left), 422
    `insufficient_funds`. The `Idempotency-Key` is scoped to the buyer: a retry replays the
    first answer, refusals included (use a new key to try again)."""
    return replay_response(await svc.place_order(
        _shop(state), user_id, idem, product_id=body.product_id, quantity=body.quantity,
        expected_unit_price=body.expected_unit_price))


@router.get("/api/v1/orders", response_model=s.ShopOrderPage,
            responses=problems(ValidationFailed, Unauthorized),
            summary="The caller's purchases, newest first")
async def my_orders(user_id: UserId, state: State, status: Status | None = None,
                    limit: Limit = 50, cursor_: Cursor = None) -> Response:
    """Orders the caller placed as a buyer, newest first, with cursor pages; `status`
    filters (`paid`, `partially_refunded`, `refunded`)."""
    page = await svc.list_orders(state.db, svc.order_filter(buyer_id=user_id, status=status),
                                 before=cursor.decode_text(cursor_), limit=limit)
    return json_response(_orders(page).answer())


@router.get("/api/v1/orders/{order_id}", response_model=s.ShopOrderDetailOut,
            responses=problems(ValidationFailed, Unauthorized, NotFound),
            summary="One order, with its refunds (its buyer, its merchant, admins)")
async def get_order(order_id: OrderPath, principal: CurrentPrincipal,
                    state: State) -> Response:
    """Anyone else gets 404, as for an order that does not exist."""
    order, refunds = await svc.order_for(state.db, _actor(state, principal), order_id)
    return json_response(s.ShopOrderDetailOut.detailed(order, refunds).answer())


@router.post("/api/v1/orders/{order_id}/refund", status_code=201,
             response_model=s.RefundCreatedOut,
             responses=problems(ValidationFailed, Unauthorized, Forbidden, NotFound,
                                OrderRefunded, RefundExceedsPaid, InsufficientFunds,
                                IdempotencyKeyReused, IdempotencyKeyInUse),
             summary="Refund an order, in full or in part (its merchant or an admin)")
async def refund_order(order_id: OrderPath, body: s.RefundIn, principal: CurrentPrincipal,
                       state: State, idem: IdempotencyKey) -> Response:
    """One transaction (`kind: refund`) pays the buyer back: the merchant its share and
    the fee account the fee, pro rata (on running totals, rounded down, so refunds that
    add up to the order return exactly its fee). `amount` defaults to what is left; all
    refunds together are at most what was paid (422 `refund_exceeds_paid`, 409
    `order_refunded` once nothing is left). 422 `insufficient_funds` if the merchant's
    available balance cannot cover its share: nothing changes, and the same
    `Idempotency-Key` works again once it can. `restock: true` puts the units this refund
    pays back (whole units, pro rata) back in stock. The order becomes
    `partially_refunded` or `refunded`. The buyer gets 403; anyone else 404."""
    return replay_response(await svc.refund(
        _shop(state), _actor(state, principal), idem, order_id, amount=body.amount,
        restock=body.restock, reason=body.reason))


@router.get("/api/v1/merchant/sales", response_model=s.SalesOut,
            responses=problems(ValidationFailed, Unauthorized),
            summary="The caller's sales, newest first, with totals per product and currency")
async def my_sales(
    user_id: UserId, state: State,
    product_id: Annotated[str | None, Query(max_length=36, pattern=s.ID_PATTERN)] = None,
    status: Status | None = None,
    currency: Currency = None,
    created_from: UtcDateTime | None = None,
    created_to: UtcDateTime | None = None,
    limit: Limit = 50,
    cursor_: Cursor = None,
) -> Response:
    """Orders of every buyer and merchant, newest first, with cursor pages, filtered by
    buyer, merchant, product, `status`, `currency` and creation time (`created_from`
    included, `created_to` excluded). Admin or auditor."""
    """`totals` cover every order of the filter, not only this page: units and amounts
    sold, fees, refunds, and `net_amount`, what the merchant kept."""
    f = svc.order_filter(product_id=product_id, status=status, currency=currency,
                         created_from=created_from, created_to=created_to)
    page, totals = await svc.sales(state.db, user_id, f, before=cursor.decode_text(cursor_),
                                   limit=limit)
    return json_response(s.SalesOut(
        data=[s.ShopOrderOut.of(x) for x in page.data], next_cursor=_next(page),
        totals=[s.SalesTotalOut.of(t) for t in totals]).answer())


@router.get("/admin/v1/orders", response_model=s.ShopOrderPage, tags=["admin"],
            responses=problems(ValidationFailed, Unauthorized, Forbidden),
            summary="Every order, newest first, with filters (admins and auditors)")
async def admin_orders(
    admin: Admin, state: State,
    buyer_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
    merchant_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
    product_id: Annotated[str | None, Query(max_length=36, pattern=s.ID_PATTERN)] = None,
    status: Status | None = None,
    currency: Currency = None,
    created_from: UtcDateTime | None = None,
    created_to: UtcDateTime | None = None,
    limit: Limit = 50,
    cursor_: Cursor = None,
) -> Response:
    """Orders of every buyer and merchant, newest first, with cursor pages, filtered by
    buyer, merchant, product, `status`, `currency` and creation time (`created_from`
    included, `created_to` excluded). Admin or auditor."""
    f = svc.order_filter(buyer_id=buyer_id, merchant_id=merchant_id, product_id=product_id,
                         status=status, currency=currency, created_from=created_from,
                         created_to=created_to)
    page = await svc.list_orders(state.db, f, before=cursor.decode_text(cursor_), limit=limit)
    return json_response(_orders(page).answer())
