"""Gifts between users: splits, policies, history, and 50 gifts at once from one wallet."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from coinpurse.app import create_app
from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.gifts.split import split_gift
from tests.conftest import TEST_JWT_SECRET, MakeKey, auth, user_token
from tests.invariants import assert_invariants, ledger_state_async


async def _credit(client: httpx.AsyncClient, key: str, user: str, amount: int,
                  currency: str = "points") -> None:
    r = await client.post("/internal/v1/wallet/credit",
                          headers={"X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex},
                          json={"user_id": user, "currency": currency, "amount": amount,
                                "description": "fund", "reference_id": "fund"})
    assert r.status_code == 201, r.text


async def _gift(client: httpx.AsyncClient, giver: str, idem: str | None = None,
                **body: Any) -> httpx.Response:
    headers = {**auth(user_token(giver)), "Idempotency-Key": idem or uuid.uuid4().hex}
    return await client.post("/api/v1/gifts", headers=headers, json=body)


async def _balance(client: httpx.AsyncClient, key: str, address: str,
                   currency: str = "points") -> int:
    r = await client.get(f"/internal/v1/accounts/{address}", headers={"X-API-Key": key})
    value: int = r.json()["balances"][currency]["balance"]
    return value


def test_split_rule_rounds_commissions_down_and_never_loses_a_unit() -> None:
    s = split_gift(15, platform_bps=2000, agency_bps=1000)
    assert (s.receiver, s.agency, s.platform) == (11, 1, 3)
    for amount in range(1, 500):
        for p_bps, a_bps in ((2000, 1000), (3333, 3333), (0, 0), (10_000, 0), (1, 9_999)):
            s = split_gift(amount, platform_bps=p_bps, agency_bps=a_bps)
            assert s.total == amount
            assert s.platform == amount * p_bps // 10_000
            assert s.agency == amount * a_bps // 10_000
    big = split_gift(2**63 - 1, platform_bps=2000, agency_bps=1000)
    assert big.total == 2**63 - 1


async def test_catalog(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/gifts/catalog", headers=auth(user_token("u")))
    assert r.status_code == 200
    rose = next(g for g in r.json()["data"] if g["gift_type"] == "rose")
    assert rose == {"gift_type": "rose", "price": 10, "currency": "points"}
    assert (await client.get("/api/v1/gifts/catalog")).status_code == 401


async def test_gift_split_with_and_without_agency(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key()
    await _credit(client, key, "fan", 100)
    r = await _gift(client, "fan", to_user_id="host", amount=15, currency="points",
                    message="hi", context_id="stream_1")
    assert r.status_code == 201, r.text
    g = r.json()
    assert (g["receiver_amount"], g["agency_commission"], g["platform_fee"]) == (12, 0, 3)
    assert g["agency_id"] is None and g["giver_wallet"]["balance"] == 85

    put = await client.put("/internal/v1/users/host/agency", headers={"X-API-Key": key},
                           json={"agency_id": "7"})
    assert put.status_code == 200 and put.json() == {"user_id": "host", "agency_id": "7"}
    r = await _gift(client, "fan", to_user_id="host", amount=15, currency="points")
    g = r.json()
    assert (g["receiver_amount"], g["agency_commission"], g["platform_fee"]) == (11, 1, 3)
    assert g["agency_id"] == "7"
    r = await _gift(client, "fan", to_user_id="host", gift_type="rose")
    assert r.json()["amount"] == 10 and r.json()["receiver_amount"] == 7

    assert await _balance(client, key, "user:fan") == 100 - 40
    assert await _balance(client, key, "user:host") == 12 + 11 + 7
    assert await _balance(client, key, "agency:7") == 1 + 1
    assert await _balance(client, key, "platform:fees") == 3 + 3 + 2

    tx = await client.get(f"/internal/v1/transactions/{g['transaction_id']}",
                          headers={"X-API-Key": key})
    assert tx.json()["kind"] == "gift"
    assert [p["destination"] for p in tx.json()["postings"]] == [
        "user:host", "agency:7", "platform:fees"]

    cleared = await client.put("/internal/v1/users/host/agency", headers={"X-API-Key": key},
                               json={"agency_id": None})
    assert cleared.json()["agency_id"] is None
    reader = await make_key("reader", "wallet:read")
    denied = await client.put("/internal/v1/users/host/agency",
                              headers={"X-API-Key": reader}, json={"agency_id": "8"})
    assert denied.status_code == 403


async def test_gift_refusals_change_nothing(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await _credit(client, key, "fan", 20)
    cases = [
        ({"to_user_id": "fan", "amount": 5, "currency": "points"}, "self_gift"),
        ({"to_user_id": "host", "gift_type": "unicorn"}, "unknown_gift_type"),
        ({"to_user_id": "host", "gift_type": "rose", "currency": "usdt"}, "currency_mismatch"),
    ]
    for body, reason in cases:
        r = await _gift(client, "fan", **body)
        assert r.status_code == 422 and r.json()["reason"] == reason, r.text
    for body in ({"to_user_id": "host", "amount": 0, "currency": "points"},
                 {"to_user_id": "host", "amount": -5, "currency": "points"},
                 {"to_user_id": "host", "amount": 5},
                 {"to_user_id": "host", "amount": 5, "gift_type": "rose",
                  "currency": "points"},
                 {"to_user_id": "host"},
                 {"to_user_id": "a:b", "amount": 5, "currency": "points"}):
        r = await _gift(client, "fan", **body)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", body
    r = await _gift(client, "fan", to_user_id="host", amount=5, currency="gold")
    assert r.json()["code"] == "unknown_currency"
    r = await _gift(client, "fan", to_user_id="host", gift_type="car")
    assert r.status_code == 422 and r.json()["code"] == "insufficient_funds"
    assert await _balance(client, key, "user:fan") == 20
    assert await _balance(client, key, "platform:fees") == 0


async def test_gift_idempotency_is_per_user(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await _credit(client, key, "a", 100)
    await _credit(client, key, "b", 100)
    first = await _gift(client, "a", "same", to_user_id="host", gift_type="rose")
    again = await _gift(client, "a", "same", to_user_id="host", gift_type="rose")
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    other = await _gift(client, "b", "same", to_user_id="host", gift_type="rose")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    reused = await _gift(client, "a", "same", to_user_id="host", gift_type="heart")
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    assert await _balance(client, key, "user:host") == 8 + 8


async def test_gift_lists_sent_and_received(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await _credit(client, key, "fan", 1000)
    ids = [(await _gift(client, "fan", to_user_id="host", gift_type="rose")).json()["id"]
           for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"direction": "sent", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/gifts", params=params,
                                 headers=auth(user_token("fan")))).json()
        seen += [g["id"] for g in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    received = await client.get("/api/v1/gifts", params={"direction": "received"},
                                headers=auth(user_token("host")))
    assert [g["id"] for g in received.json()["data"]] == list(reversed(ids))
    none = await client.get("/api/v1/gifts", params={"direction": "received"},
                            headers=auth(user_token("fan")))
    assert none.json() == {"data": [], "next_cursor": None}
    bad = await client.get("/api/v1/gifts", params={"direction": "sideways"},
                           headers=auth(user_token("fan")))
    assert bad.status_code == 422
    bad = await client.get("/api/v1/gifts", params={"cursor": "!!"},
                           headers=auth(user_token("fan")))
    assert bad.status_code == 422


async def test_fifty_concurrent_gifts_from_one_wallet(
    client: httpx.AsyncClient, make_key: MakeKey, db_url: str
) -> None:
    key = await make_key()
    await _credit(client, key, "fan", 100)
    await client.put("/internal/v1/users/host/agency", headers={"X-API-Key": key},
                     json={"agency_id": "9"})
    answers = await asyncio.gather(*(
        _gift(client, "fan", to_user_id="host", amount=7, currency="points")
        for _ in range(50)))
    accepted = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code != 201]
    assert len(accepted) == 100 // 7
    assert all(r.json()["code"] == "insufficient_funds" for r in refused)
    balances = sorted(r.json()["giver_wallet"]["balance"] for r in accepted)
    assert balances == [100 - 7 * i for i in range(len(accepted), 0, -1)]
    assert await _balance(client, key, "user:fan") == 100 - 7 * len(accepted)
    n = len(accepted)
    # 7 with 20% / 10%: platform 1, agency 0, receiver 6: every accepted gift fully split.
    assert await _balance(client, key, "user:host") == 6 * n
    assert await _balance(client, key, "platform:fees") == 1 * n
    engine = create_engine(db_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT amount, receiver_amount, agency_amount, platform_fee FROM gifts"))).all()
    finally:
        await engine.dispose()
    assert len(rows) == n and all(a == r + g + p for a, r, g, p in rows)
    assert_invariants(await ledger_state_async(db_url))


@pytest.fixture
async def strict_client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                        currencies="points:0,usdt:2,diamonds:0", gift_currencies="diamonds",
                        transfer_currencies="diamonds,points", gift_allow_amount=False,
                        gift_catalog="rose:10:diamonds")
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_currency_policies(strict_client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await _credit(strict_client, key, "fan", 100, "usdt")
    r = await _gift(strict_client, "fan", to_user_id="host", amount=5, currency="usdt")
    assert r.status_code == 422 and r.json()["reason"] == "amount_not_allowed"
    catalog = await strict_client.get("/api/v1/gifts/catalog", headers=auth(user_token("x")))
    assert catalog.json()["data"] == [{"gift_type": "rose", "price": 10,
                                       "currency": "diamonds"}]
    t = await strict_client.post("/internal/v1/transfers", headers={
        "X-API-Key": key, "Idempotency-Key": "t1"}, json={
        "postings": [{"source": "user:fan", "destination": "user:host", "amount": 5,
                      "currency": "usdt"}], "description": "x", "reference_id": "x"})
    assert t.status_code == 422 and t.json()["code"] == "currency_not_transferable"
    own = await strict_client.post("/internal/v1/transfers", headers={
        "X-API-Key": key, "Idempotency-Key": "t2"}, json={
        "postings": [{"source": "user:fan", "destination": "user:fan:savings", "amount": 5,
                      "currency": "usdt"}], "description": "x", "reference_id": "x"})
    assert own.status_code == 201, own.text


async def test_a_posting_the_engine_refuses_is_a_422_not_a_503(
    db_url: str, make_key: MakeKey
) -> None:
    """Fees paid to a user's wallet: that user's gift has a posting from the wallet to
    itself. The engine refused it with ``invalid_posting``, a code the renderer did not
    know, so the whole batch failed and the gift got 503 (retry) for ever."""
    settings = Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                        currencies="points:0", platform_fee_address="user:house")
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        key = await make_key()
        await _credit(c, key, "house", 100)
        r = await _gift(c, "house", to_user_id="host", amount=50, currency="points")
        assert r.status_code == 422 and r.json()["code"] == "invalid_posting", r.text
        assert await _balance(c, key, "user:house") == 100
        ok = await _gift(c, "fan", to_user_id="house", amount=1, currency="points")
        assert ok.json()["code"] == "insufficient_funds"
