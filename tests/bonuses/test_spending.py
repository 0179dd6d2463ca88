"""Spending cash and bonus money: the spend order per currency, use_bonus=false, holds on
cash only, transfers never touching bonus wallets, shop purchases and their refunds."""

from __future__ import annotations

from typing import Any

import httpx

from coinpurse.config import Settings
from tests.bonuses.conftest import (
    account,
    as_service,
    as_user,
    check,
    debit,
    fund,
    granted,
    promotion,
    rows,
    wallet,
)
from tests.conftest import MakeKey


async def _bonus(client: httpx.AsyncClient, key: str, user: str, amount: int,
                 currency: str = "coins", **terms: Any) -> dict[str, Any]:
    promo = await promotion(client, currency=currency, amount=amount, per_user_limit=None,
                            **{"wagering_multiplier": 10, **terms})
    return await granted(client, key, user, promo["code"])


async def test_cash_first_then_bonus(client: httpx.AsyncClient, make_key: MakeKey,
                                     settings: Settings) -> None:
    key = await make_key()
    await fund(client, key, "c", 100)
    await _bonus(client, key, "c", 50)
    r = await debit(client, key, "c", 120, idem="d-1", reference_id="spin-1")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["from_cash"], body["from_bonus"], body["bonus_balance_after"]) == (100, 20, 30)
    assert body["wallet"] == {"balance": 0, "held": 0, "available": 0}
    again = await debit(client, key, "c", 120, idem="d-1", reference_id="spin-1")
    assert again.content == r.content  # replayed, nothing moved twice
    assert await wallet(client, "c") == {"balance": 0, "held": 0, "available": 0, "bonus": 30}
    short = await debit(client, key, "c", 31)
    assert (short.status_code, short.json()["code"]) == (422, "insufficient_funds")
    cash_only = await debit(client, key, "c", 10, use_bonus=False)
    assert (cash_only.status_code, cash_only.json()["code"]) == (422, "insufficient_funds")
    assert await wallet(client, "c") == {"balance": 0, "held": 0, "available": 0, "bonus": 30}
    # The transaction has two postings: cash and bonus, both to the service.
    legs = await rows(settings.database_url,
                      "SELECT a.address, e.amount FROM entries e JOIN accounts a "
                      "ON a.id = e.account_id JOIN transactions t ON t.id = e.transaction_id "
                      "WHERE t.id = :t ORDER BY a.address", t=body["id"])
    assert sorted((a, int(x)) for a, x in legs) == [
        ("service:games", 20), ("service:games", 100), ("user:c", -100),
        ("user:c:bonus", -20)]
    await check(settings.database_url)


async def test_bonus_first_and_use_bonus_false(client: httpx.AsyncClient, make_key: MakeKey,
                                               settings: Settings) -> None:
    key = await make_key()
    await fund(client, key, "p", 100, "points")
    await _bonus(client, key, "p", 50, "points")
    r = await debit(client, key, "p", 70, "points")
    assert (r.json()["from_cash"], r.json()["from_bonus"]) == (20, 50)
    assert await wallet(client, "p", "points") == {"balance": 80, "held": 0, "available": 80,
                                                   "bonus": 0}
    await _bonus(client, key, "p", 40, "points")
    plain = await debit(client, key, "p", 30, "points", use_bonus=False)
    assert (plain.json()["from_cash"], plain.json()["from_bonus"]) == (30, 0)
    assert plain.json()["bonus_balance_after"] == 40
    assert (await wallet(client, "p", "points"))["bonus"] == 40
    # No bonus at all: one plain posting, and the answer says so.
    await fund(client, key, "q", 10, "points")
    bare = await debit(client, key, "q", 10, "points")
    assert (bare.json()["from_cash"], bare.json()["from_bonus"]) == (10, 0)
    await check(settings.database_url)


async def test_holds_and_transfers_never_spend_bonus(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    await fund(client, key, "h", 50)
    await _bonus(client, key, "h", 100)
    hold = {"user_id": "h", "currency": "coins", "description": "bet", "reference_id": "b1"}
    r = await client.post("/internal/v1/holds", headers=as_service(key),
                          json={**hold, "amount": 60})
    assert (r.status_code, r.json()["code"]) == (422, "insufficient_funds")
    into_bonus = await client.post("/internal/v1/holds", headers=as_service(key),
                                   json={**hold, "amount": 10, "destination": "user:h:bonus"})
    assert (into_bonus.status_code, into_bonus.json()["code"]) == (422,
                                                                   "bonus_wallet_reserved")
    ok = await client.post("/internal/v1/holds", headers=as_service(key),
                           json={**hold, "amount": 50})
    assert ok.status_code == 201, ok.text
    for source, dest in (("user:h:bonus", "user:z"), ("user:h", "user:z:bonus")):
        t = await client.post("/internal/v1/transfers", headers=as_service(key), json={
            "postings": [{"source": source, "destination": dest, "amount": 1,
                          "currency": "coins"}],
            "description": "move", "reference_id": "t1"})
        assert (t.status_code, t.json()["code"]) == (422, "bonus_wallet_reserved"), t.text
    assert await wallet(client, "h") == {"balance": 50, "held": 50, "available": 0,
                                         "bonus": 100}
    await check(settings.database_url)


async def test_purchase_spends_cash_then_bonus_and_refund_gives_back(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    url = settings.database_url
    await fund(client, key, "buyer", 50)
    bonus = await _bonus(client, key, "buyer", 100)
    r = await client.post("/api/v1/products", headers=as_user("shop", role="merchant"),
                          json={"name": "Sword", "price": 120, "currency": "coins",
                                "stock": 5})
    assert r.status_code == 201, r.text
    order = await client.post("/api/v1/orders", headers=as_user("buyer"),
                              json={"product_id": r.json()["id"], "quantity": 1})
    assert order.status_code == 201, order.text
    paid = order.json()
    assert (paid["from_cash"], paid["from_bonus"]) == (50, 70)
    assert paid["buyer_wallet"] == {"balance": 0, "held": 0, "available": 0}
    assert await wallet(client, "buyer") == {"balance": 0, "held": 0, "available": 0,
                                             "bonus": 30}
    assert await account(url, "user:shop") == 120
    # A partial refund, then the rest: cash back to cash, bonus back to the bonus wallet.
    half = await client.post(f"/api/v1/orders/{paid['id']}/refund",
                             headers=as_user("shop", role="merchant"),
                             json={"amount": 60, "reason": "half"})
    assert half.status_code == 201, half.text
    rest = await client.post(f"/api/v1/orders/{paid['id']}/refund",
                             headers=as_user("shop", role="merchant"),
                             json={"reason": "rest"})
    assert rest.status_code == 201, rest.text
    assert await wallet(client, "buyer") == {"balance": 50, "held": 0, "available": 50,
                                             "bonus": 100}
    mine = await client.get(f"/api/v1/bonuses/{bonus['id']}", headers=as_user("buyer"))
    assert mine.json()["remaining"] == 100 and mine.json()["status"] == "active"
    await check(url)


async def test_refund_after_the_bonus_closed_goes_back_to_promotions(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    url = settings.database_url
    bonus = await _bonus(client, key, "late", 100)
    r = await client.post("/api/v1/products", headers=as_user("shop2", role="merchant"),
                          json={"name": "Shield", "price": 40, "currency": "coins",
                                "stock": 5})
    order = await client.post("/api/v1/orders", headers=as_user("late"),
                              json={"product_id": r.json()["id"], "quantity": 1})
    assert order.json()["from_bonus"] == 40
    f = await client.post(f"/admin/v1/bonuses/{bonus['id']}/forfeit",
                          headers={**as_user("ops-1", role="admin", mfa=True)},
                          json={"reason": "abuse"})
    assert f.status_code == 200 and f.json()["status"] == "forfeited", f.text
    refund = await client.post(f"/api/v1/orders/{order.json()['id']}/refund",
                               headers=as_user("shop2", role="merchant"),
                               json={"reason": "sorry"})
    assert refund.status_code == 201, refund.text
    # Bonus money of a closed bonus never becomes cash: it goes back to promotions.
    assert await wallet(client, "late") == {"balance": 0, "held": 0, "available": 0,
                                            "bonus": 0}
    # Granted 100; 60 came back by the forfeit, 40 by the refund.
    assert await account(url, "service:promotions") == 0
    assert await account(url, "user:shop2") == 0
    await check(url)
