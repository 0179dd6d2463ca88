"""Buyers racing for the last units, retries racing each other, refunds racing refunds: in
one process (every order of a batch sees the batch's earlier sales) and over a real
``coinpurse serve`` with several worker processes on PostgreSQL (row locks between
processes, products locked in every order)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from coinpurse.config import Settings
from tests.conftest import MakeKey, Server, auth, user_token
from tests.invariants import assert_invariants, ledger_state_async
from tests.shop.conftest import FEE_BP, as_merchant, as_user, balance, buy, fund, product, rows

BUYERS = 100
STOCK = 10
PRICE = 130  # fee 13


async def _check_exactly_stock_sold(url: str, product_id: str, answers: list[httpx.Response],
                                    buyers: list[str], *, funds: int) -> None:
    """The shop's promise after a race: the stock sold out exactly, every sale paid once, no
    buyer charged without an order, the ledger's invariants whole."""
    codes = Counter((r.status_code, r.json().get("code")) for r in answers)
    assert codes == {(201, None): STOCK, (409, "out_of_stock"): BUYERS - STOCK}, codes
    orders = await rows(url, "SELECT buyer_id, amount, fee, status FROM orders "
                             "WHERE product_id = :p", p=product_id)
    assert len(orders) == STOCK and {o.status for o in orders} == {"paid"}
    winners = {r.json()["buyer_id"] for r in answers if r.status_code == 201}
    assert {o.buyer_id for o in orders} == winners and len(winners) == STOCK
    assert int((await rows(url, "SELECT stock FROM products WHERE id = :p",
                           p=product_id))[0][0]) == 0
    fee = PRICE * FEE_BP // 10_000
    assert await balance(url, "user:m1") == STOCK * (PRICE - fee)
    assert await balance(url, "platform:fees") == STOCK * fee
    for buyer in buyers:
        expected = funds - PRICE if buyer in winners else funds
        assert await balance(url, f"user:{buyer}") == expected, buyer
    purchases = await rows(url, "SELECT COUNT(*) FROM transactions WHERE kind = 'purchase'")
    assert purchases[0][0] == STOCK
    assert_invariants(await ledger_state_async(url))


async def test_100_buyers_for_10_units(client: httpx.AsyncClient, make_key: MakeKey,
                                       settings: Settings, app: Any) -> None:
    url = settings.database_url
    key = await make_key()
    buyers = [f"b{i}" for i in range(BUYERS)]
    for b in buyers:
        await fund(client, key, b, 1000)
    item = await product(client, "m1", price=PRICE, stock=STOCK)
    ledger = app.state.coinpurse.ledger
    batches, jobs = ledger.batches_committed, ledger.jobs_committed
    answers = await asyncio.gather(*(buy(client, b, item["id"]) for b in buyers))
    # Orders shared batches: later ones counted the units earlier ones had just sold.
    assert ledger.batches_committed - batches < ledger.jobs_committed - jobs
    await _check_exactly_stock_sold(url, item["id"], list(answers), buyers, funds=1000)


async def test_the_same_key_20_times_at_once_makes_one_order(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    url = settings.database_url
    key = await make_key()
    await fund(client, key, "b1", 1000)
    item = await product(client, "m1", price=PRICE, stock=STOCK)
    token = user_token("b1")
    answers = await asyncio.gather(*(
        client.post("/api/v1/orders", json={"product_id": item["id"], "quantity": 2},
                    headers={**auth(token), "Idempotency-Key": "once"})
        for _ in range(20)))
    created = [r for r in answers if r.status_code == 201]
    busy = [r for r in answers if r.status_code == 409]
    assert len(created) + len(busy) == 20 and created
    assert {r.json()["code"] for r in busy} <= {"idempotency_key_in_use"}
    assert len({r.json()["id"] for r in created}) == 1
    assert len(await rows(url, "SELECT id FROM orders")) == 1
    assert await balance(url, "user:b1") == 1000 - 2 * PRICE
    assert int((await rows(url, "SELECT stock FROM products"))[0][0]) == STOCK - 2
    late = await buy(client, "b1", item["id"], quantity=2, idem="once")
    assert late.status_code == 201 and late.headers["Idempotent-Replayed"] == "true"
    assert late.json() == created[0].json()


async def test_refunds_racing_each_other_never_pay_back_more_than_was_paid(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    url = settings.database_url
    key = await make_key()
    await fund(client, key, "b1", 1000)
    item = await product(client, "m1", price=100, stock=STOCK)
    order = (await buy(client, "b1", item["id"], quantity=3)).json()  # 300, fee 30
    merchant = as_merchant("m1")

    answers = await asyncio.gather(*(
        client.post(f"/api/v1/orders/{order['id']}/refund",
                    json={"amount": 70, "restock": True, "reason": "race"},
                    headers={**merchant, "Idempotency-Key": uuid.uuid4().hex})
        for _ in range(8)))
    codes = Counter((r.status_code, r.json()["code"] if r.status_code >= 400 else None)
                    for r in answers)
    # 4 x 70 = 280 fit in 300; the others find 20 left.
    assert codes == {(201, None): 4, (422, "refund_exceeds_paid"): 4}, codes
    got = await rows(url, "SELECT refunded_amount, refunded_fee, restocked_quantity, status "
                          "FROM orders")
    assert tuple(got[0]) == (280, 28, 2, "partially_refunded")
    last = await client.post(f"/api/v1/orders/{order['id']}/refund",
                             json={"restock": True, "reason": "rest"},
                             headers={**merchant, "Idempotency-Key": "rest"})
    assert last.status_code == 201 and last.json()["amount"] == 20
    assert last.json()["order"]["refunded_fee"] == 30
    assert last.json()["order"]["restocked_quantity"] == 3
    assert await balance(url, "user:b1") == 1000
    assert await balance(url, "user:m1") == 0 and await balance(url, "platform:fees") == 0
    assert int((await rows(url, "SELECT stock FROM products"))[0][0]) == STOCK
    assert_invariants(await ledger_state_async(url))


async def test_sales_and_refunds_of_one_product_in_the_same_batches(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    """A refund's restock frees units that later orders of the same batch may buy."""
    url = settings.database_url
    key = await make_key()
    buyers = [f"b{i}" for i in range(30)]
    for b in buyers:
        await fund(client, key, b, 1000)
    item = await product(client, "m1", price=100, stock=5)
    first = [(await buy(client, b, item["id"])).json() for b in buyers[:5]]
    assert all(o["status"] == "paid" for o in first)
    refunds = [client.post(f"/api/v1/orders/{o['id']}/refund",
                           json={"restock": True, "reason": "r"},
                           headers=as_merchant("m1")) for o in first]
    orders = [buy(client, b, item["id"]) for b in buyers[5:]]
    answers = await asyncio.gather(*refunds, *orders)
    assert all(r.status_code == 201 for r in answers[:5])
    sold = sum(1 for r in answers[5:] if r.status_code == 201)
    assert all(r.json()["code"] == "out_of_stock" for r in answers[5:] if r.status_code != 201)
    assert 0 <= sold <= 5
    left = int((await rows(url, "SELECT stock FROM products"))[0][0])
    assert left == 5 - sold
    paid = await rows(url, "SELECT COUNT(*) FROM orders WHERE status = 'paid'")
    assert paid[0][0] == sold
    assert_invariants(await ledger_state_async(url))


# ---------------------------------------------------------------- over a real server


async def _service_key(url: str) -> str:
    from coinpurse.auth import keys
    from coinpurse.core.db import create_engine

    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            _, secret = await keys.create_key(conn, "load", "*")
    finally:
        await engine.dispose()
    return secret


@pytest.fixture
def server(serve: Callable[..., Server], db_url: str) -> Server:
    workers = 1 if db_url.startswith("sqlite") else 3
    return serve(workers=workers, COINPURSE_COMMITTERS="2", COINPURSE_SHOP_FEE_BP=str(FEE_BP),
                 COINPURSE_RATE_LIMIT_USER="off", COINPURSE_RATE_LIMIT_IP="off",
                 COINPURSE_INBOX_POLL_S="0")


async def test_buyers_race_over_http_with_several_processes(server: Server,
                                                            db_url: str) -> None:
    """100 buyers for the 10 units of a points product, while 100 others race for the 10
    units of a usdt product: every batch of every process holds orders of both, in any
    order, so product rows are locked in both orders at once."""
    key = await _service_key(db_url)
    rng = random.Random(12)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60,
                                 limits=httpx.Limits(max_connections=200)) as http:
        points = await product(http, "m1", price=PRICE, stock=STOCK)
        usdt = await product(http, "m1", name="Shield", price=PRICE, stock=STOCK,
                             currency="usdt")
        buyers = [f"b{i}" for i in range(BUYERS)]
        for b in buyers:
            await fund(http, key, b, 1000)
            await fund(http, key, b, 1000, "usdt")
        jobs: list[tuple[str, str]] = [(b, points["id"]) for b in buyers]
        jobs += [(b, usdt["id"]) for b in buyers]
        rng.shuffle(jobs)
        answers = await asyncio.gather(*(buy(http, b, p) for b, p in jobs))

    by_product: dict[str, list[httpx.Response]] = {points["id"]: [], usdt["id"]: []}
    for (_b, p), r in zip(jobs, answers, strict=True):
        assert r.status_code < 500, r.text
        by_product[p].append(r)
    assert len(by_product[points["id"]]) == BUYERS
    codes = Counter((r.status_code, r.json().get("code")) for r in answers)
    assert codes == {(201, None): 2 * STOCK, (409, "out_of_stock"): 2 * (BUYERS - STOCK)}
    for currency, item in (("points", points), ("usdt", usdt)):
        mine = by_product[item["id"]]
        orders = await rows(db_url, "SELECT buyer_id FROM orders WHERE product_id = :p",
                            p=item["id"])
        winners = {r.json()["buyer_id"] for r in mine if r.status_code == 201}
        assert {o.buyer_id for o in orders} == winners and len(winners) == STOCK
        for b in buyers:
            expected = 1000 - PRICE if b in winners else 1000
            assert await balance(db_url, f"user:{b}", currency) == expected
        fee = PRICE * FEE_BP // 10_000
        assert await balance(db_url, "user:m1", currency) == STOCK * (PRICE - fee)
    stocks = await rows(db_url, "SELECT stock FROM products")
    assert [s[0] for s in stocks] == [0, 0]
    assert_invariants(await ledger_state_async(db_url))


async def test_one_key_from_many_connections_over_http(server: Server, db_url: str) -> None:
    """The same Idempotency-Key on 20 connections, spread over the worker processes."""
    key = await _service_key(db_url)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        item = await product(http, "m1", price=PRICE, stock=STOCK)
        await fund(http, key, "b1", 1000)
        headers = as_user("b1", "same-key")

        async def one() -> httpx.Response:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as own:
                return await own.post("/api/v1/orders", headers=headers,
                                      json={"product_id": item["id"]})

        answers = await asyncio.gather(*(one() for _ in range(20)))
        again = await http.post("/api/v1/orders", headers=headers,
                                json={"product_id": item["id"]})
    ok = [r for r in answers if r.status_code == 201]
    assert ok and all(r.status_code == 409 and r.json()["code"] == "idempotency_key_in_use"
                      for r in answers if r.status_code != 201)
    assert len({r.json()["id"] for r in ok}) == 1
    assert again.status_code == 201 and again.json()["id"] == ok[0].json()["id"]
    assert len(await rows(db_url, "SELECT id FROM orders")) == 1
    assert await balance(db_url, "user:b1") == 1000 - PRICE
    assert_invariants(await ledger_state_async(db_url))
