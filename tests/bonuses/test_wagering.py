"""Wagering and conversion: category weights, oldest bonus first, the conversion cap, 50
concurrent activity reports converting exactly once; withdrawals (forfeit and block),
expiry by the worker, an operator's forfeit, and the events of each."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from coinpurse.config import Settings
from tests.bonuses.conftest import (
    ADMIN,
    DEST,
    account,
    activity,
    as_user,
    check,
    debit,
    fund,
    granted,
    my_bonuses,
    promotion,
    rows,
    wallet,
)
from tests.conftest import MakeKey

WEIGHTS = {"slots": 10000, "table": 1000}


async def _bonus(client: httpx.AsyncClient, key: str, user: str, amount: int,
                 currency: str = "coins", **terms: Any) -> dict[str, Any]:
    promo = await promotion(client, currency=currency, amount=amount, per_user_limit=None,
                            **terms)
    return await granted(client, key, user, promo["code"])


async def _events(url: str, type_: str) -> list[dict[str, Any]]:
    found = await rows(url, "SELECT data_json FROM events WHERE type = :t ORDER BY id", t=type_)
    return [orjson.loads(d) for (d,) in found]


async def test_weights_oldest_first_and_conversion(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    url = settings.database_url
    first = await _bonus(client, key, "w", 100, wagering_multiplier=5, contributions=WEIGHTS,
                         default_contribution_bp=0)
    second = await _bonus(client, key, "w", 40, wagering_multiplier=1,
                          contributions={"slots": 10000}, default_contribution_bp=0)
    assert (first["progress"]["required"], second["progress"]["required"]) == (500, 40)

    r = await activity(client, key, "w", 1000, "table")  # 10%: 100 counts
    assert r.status_code == 200, r.text
    assert [(b["id"], b["progress"]["wagered"]) for b in r.json()["bonuses"]] == [
        (first["id"], 100)]
    none = await activity(client, key, "w", 1000, "poker")  # not listed: default 0
    assert none.json()["bonuses"] == [] and none.json()["conversions"] == []
    r = await activity(client, key, "w", 300, "slots")
    assert [b["progress"]["wagered"] for b in r.json()["bonuses"]] == [400]
    assert r.json()["bonuses"][0]["progress"]["percent"] == 80.0

    # A debit with a category counts too: 150 of slots meets the first bonus's 100 left
    # (it converts in the debit's commit) and the other 50 go on to the next bonus, which
    # converts as well (its 40 are met).
    await fund(client, key, "w", 150)
    d = await debit(client, key, "w", 150, category="slots")
    assert d.status_code == 201, d.text
    body = d.json()
    assert (body["from_cash"], body["from_bonus"]) == (150, 0)
    assert sorted((c["bonus_id"], c["converted"], c["forfeited"])
                  for c in body["bonus_conversions"]) == sorted(
        [(first["id"], 100, 0), (second["id"], 40, 0)])
    assert body["wallet"]["balance"] == 140 and body["bonus_balance_after"] == 0
    assert await wallet(client, "w") == {"balance": 140, "held": 0, "available": 140,
                                         "bonus": 0}
    done = await my_bonuses(client, "w", "?status=completed")
    assert {b["id"] for b in done} == {first["id"], second["id"]}
    assert await my_bonuses(client, "w", "?status=active") == []
    converted = await _events(url, "bonus.converted")
    assert sorted(e["bonus"]["id"] for e in converted) == sorted([first["id"], second["id"]])
    assert len(await _events(url, "bonus.awarded")) == 2
    await check(url)


async def test_conversion_cap(client: httpx.AsyncClient, make_key: MakeKey,
                              settings: Settings) -> None:
    key = await make_key()
    bonus = await _bonus(client, key, "cap", 100, wagering_multiplier=1, max_conversion=30)
    r = await activity(client, key, "cap", 100)
    assert r.json()["conversions"][0]["converted"] == 30
    assert r.json()["conversions"][0]["forfeited"] == 70
    assert await wallet(client, "cap") == {"balance": 30, "held": 0, "available": 30,
                                           "bonus": 0}
    assert await account(settings.database_url, "service:promotions") == -30
    found = (await client.get(f"/api/v1/bonuses/{bonus['id']}", headers=as_user("cap"))).json()
    assert (found["status"], found["converted"], found["forfeited"]) == ("completed", 30, 70)
    await check(settings.database_url)


async def test_fifty_concurrent_reports_convert_exactly_once(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    url = settings.database_url
    bonus = await _bonus(client, key, "race", 100, wagering_multiplier=10)  # 1000 to wager
    answers = await asyncio.gather(*(activity(client, key, "race", 25, idem=f"a-{i}",
                                              reference_id=f"round-{i}")
                                     for i in range(50)))  # 1250 reported in all
    assert [r.status_code for r in answers] == [200] * 50
    conversions = [c for r in answers for c in r.json()["conversions"]]
    assert [(c["bonus_id"], c["converted"]) for c in conversions] == [(bonus["id"], 100)]
    assert await wallet(client, "race") == {"balance": 100, "held": 0, "available": 100,
                                            "bonus": 0}
    assert len(await rows(url, "SELECT id FROM transactions WHERE kind = 'bonus_conversion'")
               ) == 1
    assert len(await _events(url, "bonus.converted")) == 1
    # The same reports again (same keys): replayed, nothing moves.
    again = await asyncio.gather(*(activity(client, key, "race", 25, idem=f"a-{i}",
                                              reference_id=f"round-{i}")
                                   for i in range(5)))
    assert all(r.headers.get("idempotent-replayed") == "true" for r in again)
    assert (await wallet(client, "race"))["balance"] == 100
    found = (await client.get(f"/api/v1/bonuses/{bonus['id']}", headers=as_user("race"))
             ).json()
    assert found["progress"]["wagered"] == 1000 and found["status"] == "completed"
    await check(url)


async def test_withdrawal_forfeits_or_is_blocked(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    url = settings.database_url
    # coins: forfeit. The active bonus goes back to promotions, the withdrawal proceeds.
    await fund(client, key, "cash", 500)
    coins = await _bonus(client, key, "cash", 80, wagering_multiplier=3)
    r = await client.post("/api/v1/withdrawals", headers=as_user("cash"),
                          json={"currency": "coins", "amount": 200, "destination": DEST})
    assert r.status_code == 201, r.text
    assert await wallet(client, "cash") == {"balance": 500, "held": 200, "available": 300,
                                            "bonus": 0}
    found = (await client.get(f"/api/v1/bonuses/{coins['id']}", headers=as_user("cash"))
             ).json()
    assert (found["status"], found["forfeited"]) == ("forfeited", 80)
    assert [e["bonus"]["id"] for e in await _events(url, "bonus.forfeited")] == [coins["id"]]

    # diamonds: block, with what is left to wager; nothing changes.
    await fund(client, key, "cash", 500, "diamonds")
    diamonds = await _bonus(client, key, "cash", 50, "diamonds", wagering_multiplier=4)
    await activity(client, key, "cash", 60, currency="diamonds")
    blocked = await client.post("/api/v1/withdrawals", headers=as_user("cash"),
                                json={"currency": "diamonds", "amount": 100,
                                      "destination": DEST})
    assert blocked.status_code == 422 and blocked.json()["code"] == "wagering_incomplete"
    assert blocked.json()["left_to_wager"] == 140
    assert blocked.json()["bonuses"] == [{"id": diamonds["id"], "wagered": 60,
                                          "required": 200, "left": 140}]
    assert await wallet(client, "cash", "diamonds") == {"balance": 500, "held": 0,
                                                        "available": 500, "bonus": 50}
    # Once played through, the withdrawal goes ahead.
    await activity(client, key, "cash", 140, currency="diamonds")
    ok = await client.post("/api/v1/withdrawals", headers=as_user("cash"),
                           json={"currency": "diamonds", "amount": 100, "destination": DEST})
    assert ok.status_code == 201, ok.text
    await check(url)


async def test_expiry_by_the_worker_and_operator_forfeit(
        client: httpx.AsyncClient, app: Any, make_key: MakeKey, settings: Settings) -> None:
    from coinpurse.bonuses.service import Bonuses

    key = await make_key()
    url = settings.database_url
    short = await _bonus(client, key, "x", 30, expires_in_days=1)
    long = await _bonus(client, key, "x", 20, expires_in_days=10)
    state = app.state.coinpurse
    bonuses = Bonuses(state.db, state.ledger, state.settings)
    assert await bonuses.expire_due() == 0  # nothing due yet
    assert await bonuses.expire_due(datetime.now(UTC) + timedelta(days=2)) == 1
    assert await bonuses.expire_due(datetime.now(UTC) + timedelta(days=2)) == 0
    assert (await wallet(client, "x"))["bonus"] == 20
    gone = (await client.get(f"/api/v1/bonuses/{short['id']}", headers=as_user("x"))).json()
    assert (gone["status"], gone["forfeited"], gone["remaining"]) == ("expired", 30, 0)
    assert [e["bonus"]["id"] for e in await _events(url, "bonus.expired")] == [short["id"]]

    f = await client.post(f"/admin/v1/bonuses/{long['id']}/forfeit", headers=ADMIN,
                          json={"reason": "duplicate account"})
    assert f.status_code == 200 and f.json()["status"] == "forfeited"
    twice = await client.post(f"/admin/v1/bonuses/{long['id']}/forfeit", headers=ADMIN,
                              json={"reason": "again"})
    assert (twice.status_code, twice.json()["code"]) == (409, "bonus_not_active")
    assert (await wallet(client, "x"))["bonus"] == 0
    assert await account(url, "service:promotions") == 0
    listed = await client.get("/admin/v1/bonuses?user_id=x", headers=ADMIN)
    assert {(b["id"], b["status"]) for b in listed.json()["data"]} == {
        (short["id"], "expired"), (long["id"], "forfeited")}
    await check(url)
