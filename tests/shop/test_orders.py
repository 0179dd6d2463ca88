"""Orders: one transaction moves the price and the fee, the stock goes down and the order is
written, or nothing happens; refunds, reads and reports."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from coinpurse.config import Settings
from tests.conftest import MakeKey, auth, user_token
from tests.invariants import assert_invariants, ledger_state_async
from tests.shop.conftest import (
    ADMIN,
    AUDITOR,
    as_merchant,
    as_user,
    balance,
    buy,
    fund,
    product,
    rows,
    stock,
)


async def _events(client: httpx.AsyncClient, key: str, types: str) -> list[dict[str, Any]]:
    r = await client.get("/internal/v1/events", headers={"X-API-Key": key},
                         params={"types": types, "limit": 1000})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["data"]
    return found


async def _orders(url: str) -> list[Any]:
    return await rows(url, "SELECT id, buyer_id, amount, status FROM orders")


async def test_a_purchase_moves_price_and_fee_and_stock_at_once(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    url = settings.database_url
    key = await make_key()
    await fund(client, key, "b1", 1000)
    sword = await product(client, "m1", price=150, stock=5)

    r = await buy(client, "b1", sword["id"], quantity=2, idem="buy-1")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "paid" and order["quantity"] == 2
    assert (order["unit_price"], order["amount"], order["fee"], order["merchant_amount"]) == \
        (150, 300, 30, 270)
    assert order["buyer_wallet"] == {"balance": 700, "held": 0, "available": 700}
    assert order["product_name"] == "Golden sword" and order["merchant_id"] == "m1"

    assert await balance(url, "user:b1") == 700
    assert await balance(url, "user:m1") == 270
    assert await balance(url, "platform:fees") == 30
    assert await stock(url, sword["id"]) == 3

    tx = await client.get(f"/internal/v1/transactions/{order['transaction_id']}",
                          headers={"X-API-Key": key})
    assert tx.json()["kind"] == "purchase" and tx.json()["reference_id"] == order["id"]
    assert [(p["source"], p["destination"], p["amount"]) for p in tx.json()["postings"]] == [
        ("user:b1", "user:m1", 300), ("user:m1", "platform:fees", 30)]

    again = await buy(client, "b1", sword["id"], quantity=2, idem="buy-1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == order
    other = await buy(client, "b1", sword["id"], quantity=3, idem="buy-1")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert len(await _orders(url)) == 1 and await balance(url, "user:b1") == 700

    paid = await _events(client, key, "order.paid")
    assert [e["data"]["id"] for e in paid] == [order["id"]]
    assert paid[0]["data"]["amount"] == 300 and paid[0]["data"]["fee"] == 30
    assert_invariants(await ledger_state_async(url))


async def test_a_fee_that_rounds_to_zero_posts_no_fee_leg(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    await fund(client, key, "b1", 100)
    cheap = await product(client, "m1", price=9, stock=5)  # 10% of 9 rounds down to 0
    r = await buy(client, "b1", cheap["id"])
    assert r.status_code == 201 and r.json()["fee"] == 0
    tx = await client.get(f"/internal/v1/transactions/{r.json()['transaction_id']}",
                          headers={"X-API-Key": key})
    assert len(tx.json()["postings"]) == 1
    assert await balance(settings.database_url, "user:m1") == 9


@pytest.mark.parametrize("case", ["out_of_stock", "insufficient_funds", "price_changed",
                                  "product_inactive", "own_product", "not_found"])
async def test_a_refused_order_changes_nothing(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings, case: str) -> None:
    url = settings.database_url
    key = await make_key()
    await fund(client, key, "b1", 500)
    await fund(client, key, "m1", 500)
    item = await product(client, "m1", price=100, stock=3)
    buyer, quantity, extra, product_id = "b1", 1, {}, item["id"]
    if case == "out_of_stock":
        quantity = 4
    elif case == "insufficient_funds":
        quantity = 3
        await product(client, "m1")  # (another product: unrelated)
        r = await client.post("/internal/v1/wallet/debit", json={
            "user_id": "b1", "currency": "points", "amount": 300, "description": "spend",
            "reference_id": "x"}, headers={"X-API-Key": key, "Idempotency-Key": "spend"})
        assert r.status_code == 201
    elif case == "price_changed":
        r = await client.patch(f"/api/v1/products/{item['id']}", json={"price": 120},
                               headers=as_merchant("m1"))
        assert r.status_code == 200
        extra = {"expected_unit_price": 100}
    elif case == "product_inactive":
        r = await client.patch(f"/api/v1/products/{item['id']}", json={"active": False},
                               headers=as_merchant("m1"))
        assert r.status_code == 200
    elif case == "own_product":
        buyer = "m1"
    else:
        product_id = "0190a0b0-0000-7000-8000-000000000001"
    before = {a: await balance(url, a) for a in ("user:b1", "user:m1", "platform:fees")}

    r = await buy(client, buyer, product_id, quantity, idem="try", **extra)
    status = {"out_of_stock": 409, "insufficient_funds": 422, "price_changed": 409,
              "product_inactive": 409, "own_product": 422, "not_found": 404}[case]
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == case
    if case == "out_of_stock":
        assert r.json()["stock"] == 3
    if case == "price_changed":
        assert r.json()["unit_price"] == 120
    assert await _orders(url) == []
    assert await stock(url, item["id"]) == 3
    assert {a: await balance(url, a) for a in before} == before
    # The refusal is the key's answer, replayed.
    again = await buy(client, buyer, product_id, quantity, idem="try", **extra)
    assert again.status_code == status and again.headers["Idempotent-Replayed"] == "true"


async def test_price_change_between_view_and_purchase(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    await fund(client, key, "b1", 1000)
    item = await product(client, "m1", price=100)
    seen = (await client.get(f"/api/v1/products/{item['id']}")).json()["price"]
    await client.patch(f"/api/v1/products/{item['id']}", json={"price": 180},
                       headers=as_merchant("m1"))
    refused = await buy(client, "b1", item["id"], expected_unit_price=seen)
    assert refused.status_code == 409 and refused.json()["code"] == "price_changed"
    assert await balance(settings.database_url, "user:b1") == 1000
    # Shown the new price, the buyer accepts it with a new key.
    ok = await buy(client, "b1", item["id"], expected_unit_price=refused.json()["unit_price"])
    assert ok.status_code == 201 and ok.json()["amount"] == 180
    # Without expected_unit_price the current price is paid.
    plain = await buy(client, "b1", item["id"])
    assert plain.status_code == 201 and plain.json()["unit_price"] == 180


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "2", None, 101, 10_001, 2**63])
async def test_quantity_bounds(client: httpx.AsyncClient, make_key: MakeKey,
                               quantity: Any) -> None:
    key = await make_key()
    await fund(client, key, "b1", 1000)
    item = await product(client, "m1")
    r = await buy(client, "b1", item["id"], quantity=quantity)
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


async def test_a_total_beyond_64_bits_is_refused(
        client: httpx.AsyncClient, make_key: MakeKey) -> None:
    item = await product(client, "m1", price=2**62, stock=5)
    r = await buy(client, "b1", item["id"], quantity=2)
    assert r.status_code == 422 and r.json()["code"] == "validation_error"


async def test_orders_are_read_by_their_buyer_merchant_and_admins_only(
        client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await fund(client, key, "b1", 1000)
    item = await product(client, "m1")
    order = (await buy(client, "b1", item["id"])).json()
    path = f"/api/v1/orders/{order['id']}"
    for who in (as_user("b1"), as_merchant("m1"), ADMIN, AUDITOR):
        r = await client.get(path, headers=who)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == order["id"] and r.json()["refunds"] == []
    # Behind an external auth system, its admins' second factor is its business.
    assert (await client.get(path, headers=auth(user_token("ops-2", role="admin")))
            ).status_code == 200
    stranger = await client.get(path, headers=as_user("b2"))
    assert stranger.status_code == 404 and stranger.json()["code"] == "not_found"
    assert (await client.get(path, headers=as_merchant("m2"))).status_code == 404
    unknown = await client.get("/api/v1/orders/0190a0b0-0000-7000-8000-00000000dead",
                               headers=as_user("b1"))
    assert unknown.status_code == 404

    mine = await client.get("/api/v1/orders", headers=as_user("b1"))
    assert [o["id"] for o in mine.json()["data"]] == [order["id"]]
    assert (await client.get("/api/v1/orders", headers=as_user("b2"))).json()["data"] == []


async def test_order_pages_are_newest_first_with_a_cursor(
        client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await fund(client, key, "b1", 1000)
    item = await product(client, "m1", price=10)
    ids = [(await buy(client, "b1", item["id"])).json()["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/orders", params=params,
                                 headers=as_user("b1"))).json()
        seen += [o["id"] for o in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


# ---------------------------------------------------------------- refunds


async def _refund(client: httpx.AsyncClient, order_id: str, who: dict[str, str],
                  idem: str | None = None, **body: Any) -> httpx.Response:
    headers = {**who, "Idempotency-Key": idem or uuid.uuid4().hex}
    return await client.post(f"/api/v1/orders/{order_id}/refund", headers=headers,
                             json={"reason": "test", **body})


async def test_partial_then_full_refund_returns_the_fee_pro_rata_and_restocks(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    url = settings.database_url
    key = await make_key()
    await fund(client, key, "b1", 1000)
    item = await product(client, "m1", price=111, stock=5)
    order = (await buy(client, "b1", item["id"], quantity=3)).json()
    assert (order["amount"], order["fee"]) == (333, 33)
    assert await stock(url, item["id"]) == 2

    first = await _refund(client, order["id"], as_merchant("m1"), amount=111, restock=True)
    assert first.status_code == 201, first.text
    refund = first.json()
    # fee back: 33 * 111 // 333 = 11; one whole unit paid back, restocked.
    assert (refund["amount"], refund["fee"], refund["merchant_amount"],
            refund["restock_quantity"]) == (111, 11, 100, 1)
    assert refund["order"]["status"] == "partially_refunded"
    assert refund["order"]["refunded_amount"] == 111 and refund["refunded_by"] == "user:m1"
    assert await stock(url, item["id"]) == 3
    assert await balance(url, "user:b1") == 1000 - 333 + 111
    assert await balance(url, "user:m1") == 300 - 100
    assert await balance(url, "platform:fees") == 33 - 11

    second = await _refund(client, order["id"], as_merchant("m1"), amount=100)
    assert second.status_code == 201 and second.json()["restock_quantity"] == 0
    # running totals: 33 * 211 // 333 = 20, so 9 more
    assert second.json()["fee"] == 9

    rest = await _refund(client, order["id"], ADMIN, restock=True)  # default: what is left
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"] == 122 and rest.json()["refunded_by"] == "admin:ops-1"
    final = rest.json()["order"]
    assert final["status"] == "refunded" and final["refunded_amount"] == 333
    assert final["refunded_fee"] == 33  # exactly the fee, over three parts
    # units: 1 with the first part, none with the second (not asked), 2 with the last
    assert rest.json()["restock_quantity"] == 2 and final["restocked_quantity"] == 3
    assert await balance(url, "user:b1") == 1000
    assert await balance(url, "user:m1") == 0 and await balance(url, "platform:fees") == 0
    assert await stock(url, item["id"]) == 5

    detail = (await client.get(f"/api/v1/orders/{order['id']}", headers=as_user("b1"))).json()
    assert [x["amount"] for x in detail["refunds"]] == [111, 100, 122]
    events = await _events(client, key, "order.refunded")
    assert [e["data"]["id"] for e in events] == [x["id"] for x in detail["refunds"]]
    assert events[-1]["data"]["order"]["status"] == "refunded"
    assert_invariants(await ledger_state_async(url))


async def test_refund_twice(client: httpx.AsyncClient, make_key: MakeKey,
                            settings: Settings) -> None:
    url = settings.database_url
    key = await make_key()
    await fund(client, key, "b1", 1000)
    item = await product(client, "m1", price=200)
    order = (await buy(client, "b1", item["id"])).json()
    merchant = as_merchant("m1")

    first = await _refund(client, order["id"], merchant, idem="refund-1")
    assert first.status_code == 201
    replay = await _refund(client, order["id"], merchant, idem="refund-1")
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    twice = await _refund(client, order["id"], merchant, idem="refund-2")
    assert twice.status_code == 409 and twice.json()["code"] == "order_refunded"
    assert len(await rows(url, "SELECT id FROM order_refunds")) == 1
    assert await balance(url, "user:b1") == 1000


async def test_a_refund_beyond_what_was_paid_is_refused(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    await fund(client, key, "b1", 1000)
    item = await product(client, "m1", price=200)
    order = (await buy(client, "b1", item["id"])).json()
    too_much = await _refund(client, order["id"], as_merchant("m1"), amount=201)
    assert too_much.status_code == 422 and too_much.json()["code"] == "refund_exceeds_paid"
    assert too_much.json()["refundable"] == 200
    assert (await _refund(client, order["id"], as_merchant("m1"), amount=150)).status_code == 201
    left = await _refund(client, order["id"], as_merchant("m1"), amount=51)
    assert left.status_code == 422 and left.json()["refundable"] == 50
    assert await balance(settings.database_url, "user:b1") == 800 + 150


async def test_a_refund_beyond_the_merchants_balance_waits_for_money(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    url = settings.database_url
    key = await make_key()
    await fund(client, key, "b1", 1000)
    item = await product(client, "m1", price=500)
    order = (await buy(client, "b1", item["id"])).json()
    # The merchant spends its earnings (450 after the fee) but 50.
    r = await client.post("/internal/v1/wallet/debit", json={
        "user_id": "m1", "currency": "points", "amount": 400, "description": "payout",
        "reference_id": "p"}, headers={"X-API-Key": key, "Idempotency-Key": "payout"})
    assert r.status_code == 201

    refused = await _refund(client, order["id"], as_merchant("m1"), idem="r-1")
    assert refused.status_code == 422 and refused.json()["code"] == "insufficient_funds"
    assert await balance(url, "user:b1") == 500 and await balance(url, "user:m1") == 50
    status = await rows(url, "SELECT status, refunded_amount FROM orders")
    assert [tuple(x) for x in status] == [("paid", 0)]
    # A partial refund it can cover passes; after a top-up, the same key works.
    small = await _refund(client, order["id"], as_merchant("m1"), amount=50)
    assert small.status_code == 201 and small.json()["merchant_amount"] == 45
    await fund(client, key, "m1", 1000)
    retried = await _refund(client, order["id"], as_merchant("m1"), idem="r-1")
    assert retried.status_code == 201, retried.text
    assert retried.json()["amount"] == 450 and retried.json()["order"]["status"] == "refunded"
    assert await balance(url, "user:b1") == 1000
    assert_invariants(await ledger_state_async(url))


async def test_only_the_merchant_or_an_admin_refunds(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    await fund(client, key, "b1", 1000)
    item = await product(client, "m1", price=200)
    order = (await buy(client, "b1", item["id"])).json()
    buyer = await _refund(client, order["id"], as_user("b1"))
    assert buyer.status_code == 403 and buyer.json()["code"] == "forbidden"
    for stranger in (as_user("b2"), as_merchant("m2")):
        r = await _refund(client, order["id"], stranger)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    auditor = await _refund(client, order["id"], AUDITOR)
    assert auditor.status_code == 403
    assert await rows(settings.database_url, "SELECT id FROM order_refunds") == []


# ---------------------------------------------------------------- reports


async def test_merchant_sales_with_totals_per_product(
        client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await fund(client, key, "b1", 10_000)
    await fund(client, key, "b2", 10_000, "usdt")
    sword = await product(client, "m1", name="Sword", price=100)
    shield = await product(client, "m1", name="Shield", price=250, currency="usdt")
    elsewhere = await product(client, "m2", price=5)
    o1 = (await buy(client, "b1", sword["id"], quantity=2)).json()
    await buy(client, "b1", sword["id"])
    await buy(client, "b2", shield["id"])
    await buy(client, "b1", elsewhere["id"])
    await _refund(client, o1["id"], as_merchant("m1"), amount=100)

    r = await client.get("/api/v1/merchant/sales", headers=as_merchant("m1"))
    assert r.status_code == 200, r.text
    sales = r.json()
    assert len(sales["data"]) == 3 and {o["merchant_id"] for o in sales["data"]} == {"m1"}
    totals = {t["product_id"]: t for t in sales["totals"]}
    assert totals[sword["id"]] == {
        "product_id": sword["id"], "product_name": "Sword", "currency": "points",
        "orders": 2, "quantity": 3, "amount": 300, "fee": 30, "refunded_amount": 100,
        "refunded_fee": 10, "restocked_quantity": 0, "net_amount": 300 - 30 - 90}
    assert totals[shield["id"]]["currency"] == "usdt" and totals[shield["id"]]["amount"] == 250
    only = await client.get("/api/v1/merchant/sales", headers=as_merchant("m1"),
                            params={"product_id": shield["id"], "limit": 1})
    assert [t["product_id"] for t in only.json()["totals"]] == [shield["id"]]
    refunded = await client.get("/api/v1/merchant/sales", headers=as_merchant("m1"),
                                params={"status": "partially_refunded"})
    assert [o["id"] for o in refunded.json()["data"]] == [o1["id"]]
    assert (await client.get("/api/v1/merchant/sales",
                             headers=as_user("b1"))).json()["totals"] == []


async def test_admin_orders_with_filters(client: httpx.AsyncClient,
                                         make_key: MakeKey) -> None:
    key = await make_key()
    await fund(client, key, "b1", 10_000)
    await fund(client, key, "b2", 10_000)
    a = await product(client, "m1", price=10)
    b = await product(client, "m2", price=20)
    o1 = (await buy(client, "b1", a["id"])).json()
    o2 = (await buy(client, "b2", b["id"])).json()
    o3 = (await buy(client, "b1", b["id"])).json()

    async def ids(**params: Any) -> list[str]:
        r = await client.get("/admin/v1/orders", headers=ADMIN, params=params)
        assert r.status_code == 200, r.text
        return [o["id"] for o in r.json()["data"]]

    assert await ids() == [o3["id"], o2["id"], o1["id"]]
    assert await ids(buyer_id="b1") == [o3["id"], o1["id"]]
    assert await ids(merchant_id="m2") == [o3["id"], o2["id"]]
    assert await ids(product_id=a["id"]) == [o1["id"]]
    assert await ids(status="refunded") == []
    assert await ids(currency="usdt") == []
    assert await ids(created_from=o2["created_at"]) == [o3["id"], o2["id"]]
    assert await ids(created_to=o2["created_at"]) == [o1["id"]]
    bad = await client.get("/admin/v1/orders", headers=ADMIN, params={
        "created_from": o3["created_at"], "created_to": o1["created_at"]})
    assert bad.status_code == 422
    assert (await client.get("/admin/v1/orders", headers=AUDITOR)).status_code == 200
    user = await client.get("/admin/v1/orders", headers=as_user("b1"))
    assert user.status_code == 403 and user.json()["code"] == "forbidden"
