"""How bonuses are granted: deposit matches with the mock provider (below min_deposit, above
max_bonus, automatic, by code), budgets and per-user limits, referrals paid once under
concurrent credits, sign-up bonuses, manual grants and claimed codes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from coinpurse.config import Settings
from tests.bonuses.conftest import (
    ADMIN,
    account,
    as_admin,
    as_service,
    as_user,
    check,
    fund,
    grant,
    my_bonuses,
    pay,
    promotion,
    rows,
    topup,
    wallet,
)
from tests.conftest import MakeKey


async def _match(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    return await promotion(client, **{"kind": "deposit_match", "percent_bp": 5000,
                                      "max_bonus": 300, "min_deposit": 100,
                                      "wagering_multiplier": 10, **fields})


async def test_deposit_match_by_code_min_deposit_and_max_bonus(
        client: httpx.AsyncClient, app: Any, settings: Settings) -> None:
    url = settings.database_url
    promo = await _match(client, code="MATCH50", per_user_limit=5)

    # Below min_deposit: the code is refused when the top-up is started, nothing changes.
    r = await client.post("/api/v1/topups", headers=as_user("al"),
                          json={"provider": "mock", "package_id": "p50", "promo_code": "match50"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_promo_code"
    assert r.json()["reason"] == "min_deposit"
    assert r.headers["content-type"].startswith("application/problem+json")

    # 50% of 100 = 50.
    order = await topup(client, "al", "p100", promo_code="match50")
    assert (await pay(client, "al", order["id"])).status_code == 200
    assert await wallet(client, "al") == {"balance": 100, "held": 0, "available": 100,
                                          "bonus": 50}
    # 50% of 1000 = 500, capped at max_bonus 300.
    order2 = await topup(client, "al", "p1000", promo_code="MATCH50")
    assert (await pay(client, "al", order2["id"])).status_code == 200
    assert await wallet(client, "al") == {"balance": 1100, "held": 0, "available": 1100,
                                          "bonus": 350}
    found = await my_bonuses(client, "al")
    assert [(b["granted"], b["remaining"], b["status"]) for b in found] == [
        (300, 300, "active"), (50, 50, "active")]
    assert found[0]["progress"] == {"wagered": 0, "required": 3000, "left": 3000,
                                    "percent": 0.0, "expires_at": found[0]["expires_at"]}
    # The credit and the bonus are one commit: the bonus's transaction and the top-up's
    # are written together, and the order's credit is the top-up transaction.
    kinds = await rows(url, "SELECT kind FROM transactions ORDER BY created_at, id")
    assert sorted(k for (k,) in kinds) == ["bonus", "bonus", "topup", "topup"]
    assert await account(url, "service:promotions") == -350
    # Paying again (verify after the credit) grants nothing more.
    assert (await pay(client, "al", order2["id"])).status_code == 200
    assert (await wallet(client, "al"))["bonus"] == 350
    again = (await client.get(f"/admin/v1/promotions/{promo['id']}", headers=ADMIN)).json()
    assert again["granted_total"] == 350 and again["granted_count"] == 2
    await check(url)


async def test_automatic_match_without_a_code_and_an_unknown_code(
        client: httpx.AsyncClient, settings: Settings) -> None:
    await _match(client, automatic=True, percent_bp=1000, max_bonus=None)
    order = await topup(client, "bo", "p1000")
    assert (await pay(client, "bo", order["id"])).status_code == 200
    assert (await wallet(client, "bo"))["bonus"] == 100
    for code, reason in (("NOPE123", "unknown"),):
        r = await client.post("/api/v1/topups", headers=as_user("bo"), json={
            "provider": "mock", "package_id": "p1000", "promo_code": code})
        assert (r.status_code, r.json()["code"], r.json()["reason"]) == (
            422, "invalid_promo_code", reason)
    await check(settings.database_url)


async def test_budget_exhausted_and_per_user_limit(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    promo = await promotion(client, code="SORRY", amount=100, budget=250, per_user_limit=1)
    assert (await grant(client, key, "u1", "SORRY")).status_code == 201
    limited = await grant(client, key, "u1", "SORRY")
    assert (limited.status_code, limited.json()["code"]) == (422, "promotion_limit_reached")
    assert (await grant(client, key, "u2", "SORRY")).status_code == 201
    spent = await grant(client, key, "u3", "SORRY")
    assert (spent.status_code, spent.json()["code"]) == (422, "promotion_budget_exhausted")
    assert spent.json()["budget_left"] == 50
    # Smaller grants still fit the rest of the budget.
    assert (await grant(client, key, "u3", "SORRY", amount=50)).status_code == 201
    found = (await client.get(f"/admin/v1/promotions/{promo['id']}", headers=ADMIN)).json()
    assert (found["granted_total"], found["budget_left"]) == (250, 0)
    assert (await wallet(client, "u3"))["bonus"] == 50
    # An exhausted deposit match grants nothing, and the top-up still succeeds.
    await promotion(client, code="TINY", kind="deposit_match", percent_bp=10000, budget=10)
    order = await topup(client, "u4", "p100", promo_code="TINY")
    assert (await pay(client, "u4", order["id"])).status_code == 200
    assert await wallet(client, "u4") == {"balance": 100, "held": 0, "available": 100,
                                          "bonus": 0}
    await check(settings.database_url)


async def test_budget_holds_under_concurrent_grants(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    await promotion(client, code="RUSH", amount=100, budget=1000, per_user_limit=None)
    answers = await asyncio.gather(*(grant(client, key, f"r{i}", "RUSH") for i in range(25)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * 10 + [422] * 15
    assert await account(settings.database_url, "service:promotions") == -1000
    await check(settings.database_url)


async def test_referral_pays_both_once_under_concurrent_credits(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    await promotion(client, code="FRIEND", kind="referral", amount=200, min_deposit=500,
                    per_user_limit=None)
    r = await client.post("/internal/v1/referrals", headers=as_service(key),
                          json={"referrer_user_id": "ref", "referee_user_id": "new"})
    assert r.status_code == 201 and r.json()["status"] == "pending"
    same = await client.post("/internal/v1/referrals", headers=as_service(key),
                             json={"referrer_user_id": "ref", "referee_user_id": "new"})
    assert same.status_code == 200
    other = await client.post("/internal/v1/referrals", headers=as_service(key),
                              json={"referrer_user_id": "x", "referee_user_id": "new"})
    assert (other.status_code, other.json()["code"]) == (409, "already_referred")
    self_ = await client.post("/internal/v1/referrals", headers=as_service(key),
                              json={"referrer_user_id": "me", "referee_user_id": "me"})
    assert (self_.status_code, self_.json()["code"]) == (422, "self_referral")

    # A top-up below min_deposit does not qualify: the link waits.
    small = await topup(client, "new", "p100")
    assert (await pay(client, "new", small["id"])).status_code == 200
    assert (await wallet(client, "new"))["bonus"] == 0

    # Two qualifying top-ups, each credited several times at once (verify calls racing).
    a, b = await topup(client, "new", "p1000"), await topup(client, "new", "p5000")
    answers = await asyncio.gather(*(pay(client, "new", o["id"], f"mockpay_{o['id']}")
                                     for o in (a, b) for _ in range(4)))
    assert [x.status_code for x in answers] == [200] * 8
    assert await wallet(client, "new") == {"balance": 6100, "held": 0, "available": 6100,
                                           "bonus": 200}
    assert (await wallet(client, "ref"))["bonus"] == 200
    state = (await client.get("/internal/v1/referrals/new", headers=as_service(key))).json()
    assert state["status"] == "rewarded" and state["order_id"] in (a["id"], b["id"])
    url = settings.database_url
    assert len(await rows(url, "SELECT id FROM bonuses WHERE kind = 'referral'")) == 2
    assert len(await rows(url, "SELECT id FROM transactions WHERE kind = 'topup'")) == 3
    await check(url)


async def test_signup_bonus_once_per_user(
        client: httpx.AsyncClient, app: Any, make_key: MakeKey, settings: Settings) -> None:
    from coinpurse.bonuses.service import Bonuses

    key = await make_key()
    await promotion(client, code="HELLO", kind="signup", amount=25, wagering_multiplier=0)
    state = app.state.coinpurse
    bonuses = Bonuses(state.db, state.ledger, state.settings)
    await fund(client, key, "fresh", 10)
    await fund(client, key, "fresh", 10)  # the same wallet: not a new user
    await bonuses.grant_signups()
    assert await bonuses.grant_signups() == 0
    # Wagering 0: it converted at once, into cash.
    assert await wallet(client, "fresh") == {"balance": 45, "held": 0, "available": 45,
                                             "bonus": 0}
    found = await my_bonuses(client, "fresh")
    assert [(b["kind"], b["status"], b["converted"]) for b in found] == [
        ("signup", "completed", 25)]
    await check(settings.database_url)


async def test_manual_grant_idempotent_and_claim(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    await promotion(client, code="GIFT", amount=70, per_user_limit=None)
    first = await grant(client, key, "m", "GIFT", idem="g-1")
    again = await grant(client, key, "m", "GIFT", idem="g-1")
    assert first.status_code == 201 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    reused = await grant(client, key, "m", "GIFT", idem="g-1", amount=5)
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    by_admin = await client.post("/admin/v1/bonuses", headers=as_admin(), json={
        "user_id": "m", "promotion_code": "gift", "amount": 30, "reason": "outage"})
    assert by_admin.status_code == 201 and by_admin.json()["granted"] == 30
    assert (await wallet(client, "m"))["bonus"] == 100

    await promotion(client, code="CLAIMME", amount=40, claimable=True)
    claimed = await client.post("/api/v1/bonuses/claim", headers=as_user("m"),
                                json={"code": "claimme"})
    assert claimed.status_code == 201 and claimed.json()["granted"] == 40
    twice = await client.post("/api/v1/bonuses/claim", headers=as_user("m"),
                              json={"code": "CLAIMME"})
    assert (twice.status_code, twice.json()["code"]) == (422, "promotion_limit_reached")
    not_claimable = await client.post("/api/v1/bonuses/claim", headers=as_user("m"),
                                      json={"code": "GIFT"})
    assert (not_claimable.status_code, not_claimable.json()["code"]) == (
        422, "invalid_promo_code")
    assert (await wallet(client, "m"))["bonus"] == 140
    await check(settings.database_url)


async def test_deactivating_a_promotion_leaves_its_bonuses(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    promo = await promotion(client, code="OLD", amount=60)
    bonus_key = "grant-old-1"
    first = await grant(client, key, "d", "OLD", idem=bonus_key)
    assert first.status_code == 201, first.text
    bonus = first.json()
    r = await client.patch(f"/admin/v1/promotions/{promo['id']}", headers=ADMIN,
                           json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    refused = await grant(client, key, "e", "OLD")
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_promo_code")
    assert refused.json()["reason"] == "inactive"
    # A retry of the grant made before the promotion ended replays its answer.
    again = await grant(client, key, "d", "OLD", idem=bonus_key)
    assert again.status_code == 201 and again.json()["id"] == bonus["id"]
    mine = await client.get(f"/api/v1/bonuses/{bonus['id']}",
                            headers=as_user("d"))
    assert mine.json()["status"] == "active" and mine.json()["remaining"] == 60
    listed = await client.get("/admin/v1/promotions?kind=manual&active=false", headers=ADMIN)
    assert [p["code"] for p in listed.json()["data"]] == ["OLD"]
    assert (await client.get("/admin/v1/promotions?active=true", headers=ADMIN)
            ).json()["data"] == []
    # Admins and services see the bonus wallet beside the cash wallet.
    acct = await client.get("/admin/v1/accounts/user:d", headers=ADMIN)
    assert acct.json()["balances"]["coins"] == {"balance": 0, "held": 0, "available": 0,
                                                "bonus": 60}
    internal = await client.get("/internal/v1/wallet/balance/d", headers=as_service(key))
    assert internal.json()["wallets"]["coins"]["bonus"] == 60
    await check(settings.database_url)


async def test_signup_bonus_at_builtin_registration(db_url: str) -> None:
    from asgi_lifespan import LifespanManager

    from coinpurse.app import create_app
    from coinpurse.bonuses.service import Bonuses
    from tests.bonuses.conftest import TIERS
    from tests.conftest import TEST_JWT_SECRET

    settings = Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                        auth="builtin", currencies="coins:0", kyc_tiers=json.dumps(TIERS),
                        rate_limit_ip="off", rate_limit_user="off")
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await promotion(c, code="JOIN", kind="signup", amount=15, wagering_multiplier=2)
        r = await c.post("/api/v1/auth/register",
                         json={"email": "new@example.com", "password": "correct horse battery"})
        assert r.status_code == 202, r.text
        login = await c.post("/api/v1/auth/login", json={
            "email": "new@example.com", "password": "correct horse battery"})
        token = login.json()["access_token"]
        state = app.state.coinpurse
        await Bonuses(state.db, state.ledger, state.settings).grant_signups()
        mine = await c.get("/api/v1/bonuses", headers={"Authorization": f"Bearer {token}"})
        assert [(b["kind"], b["granted"], b["status"]) for b in mine.json()["data"]] == [
            ("signup", 15, "active")]
        # The same user's first wallet later queues nothing new: one sign-up bonus.
        await Bonuses(state.db, state.ledger, state.settings).grant_signups()
        again = await c.get("/api/v1/bonuses", headers={"Authorization": f"Bearer {token}"})
        assert len(again.json()["data"]) == 1
    await check(db_url)
