"""Bad input on every bonuses route (and the fields bonuses added to debits and top-ups):
a problem+json answer with a stable code, never a 500, and nothing changes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from coinpurse.config import Settings
from tests.bonuses.conftest import (
    ADMIN,
    AUDITOR,
    as_admin,
    as_service,
    as_user,
    check,
    granted,
    promotion,
    rows,
)
from tests.conftest import MakeKey, auth, user_token

NO_SUCH = "01a2341c-0000-7000-8000-000000000000"


def _problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["code"] == code, body
    assert {"type", "title", "status", "detail", "code"} <= body.keys()


async def _moved(url: str) -> int:
    return len(await rows(url, "SELECT id FROM transactions"))


async def test_user_routes(client: httpx.AsyncClient, make_key: MakeKey,
                           settings: Settings) -> None:
    key = await make_key()
    await promotion(client, code="MINE", amount=10, claimable=True)
    bonus = await granted(client, key, "owner", "MINE")
    before = await _moved(settings.database_url)
    me = auth(user_token("someone"))
    _problem(await client.get("/api/v1/bonuses"), 401, "unauthorized")
    for query in ("?status=lost", "?limit=0", "?limit=1000", "?cursor=%%%"):
        _problem(await client.get(f"/api/v1/bonuses{query}", headers=me), 422,
                 "validation_error")
    _problem(await client.get("/api/v1/bonuses?currency=gold", headers=me), 422,
             "unknown_currency")
    _problem(await client.get("/api/v1/bonuses/not_an_id!", headers=me), 422,
             "validation_error")
    _problem(await client.get(f"/api/v1/bonuses/{bonus['id']}", headers=me), 404, "not_found")
    _problem(await client.get(f"/api/v1/bonuses/{NO_SUCH}", headers=me), 404, "not_found")
    claim = "/api/v1/bonuses/claim"
    _problem(await client.post(claim, json={"code": "MINE"}, headers=me), 422,
             "validation_error")  # no Idempotency-Key
    for body in ({}, {"code": "x"}, {"code": "has space"}, {"code": 5},
                 {"code": "MINE", "extra": 1}, []):
        _problem(await client.post(claim, json=body, headers=as_user("someone")), 422,
                 "validation_error")
    _problem(await client.post(claim, content=b"{nope", headers={
        **as_user("someone"), "Content-Type": "application/json"}), 422, "validation_error")
    _problem(await client.post(claim, json={"code": "UNKNOWN1"}, headers=as_user("someone")),
             422, "invalid_promo_code")
    _problem(await client.post("/api/v1/topups", headers=as_user("someone"), json={
        "provider": "mock", "package_id": "p100", "promo_code": "no spaces"}), 422,
        "validation_error")
    _problem(await client.post("/api/v1/topups", headers=as_user("someone"), json={
        "provider": "mock", "package_id": "p100", "promo_code": "MINE"}), 422,
        "invalid_promo_code")  # not a deposit match
    assert await _moved(settings.database_url) == before
    await check(settings.database_url)


async def test_service_routes(client: httpx.AsyncClient, make_key: MakeKey,
                              settings: Settings) -> None:
    key = await make_key()
    reader = await make_key("reader", "wallet:read")
    await promotion(client, code="SVC", amount=10, per_user_limit=None)
    await promotion(client, code="MATCHX", kind="deposit_match", percent_bp=100)
    before = await _moved(settings.database_url)

    grant_ok = {"user_id": "u", "promotion_code": "SVC"}
    _problem(await client.post("/internal/v1/bonuses", json=grant_ok), 401, "unauthorized")
    _problem(await client.post("/internal/v1/bonuses", json=grant_ok,
                               headers=as_service(reader)), 403, "forbidden")
    _problem(await client.post("/internal/v1/bonuses", json=grant_ok,
                               headers={"X-API-Key": key}), 422, "validation_error")
    bad_grants: list[Any] = [
        {}, {"user_id": "u"}, {"user_id": "", "promotion_code": "SVC"},
        {"user_id": "u", "promotion_code": "SVC", "amount": 0},
        {"user_id": "u", "promotion_code": "SVC", "amount": -5},
        {"user_id": "u", "promotion_code": "SVC", "amount": 2**63},
        {"user_id": "u", "promotion_code": "SVC", "amount": "10"},
        {"user_id": "u", "promotion_code": "SVC", "surprise": True},
    ]
    for body in bad_grants:
        _problem(await client.post("/internal/v1/bonuses", json=body,
                                   headers=as_service(key)), 422, "validation_error")
    for code in ("NOSUCH", "MATCHX"):  # unknown; not a manual promotion
        _problem(await client.post("/internal/v1/bonuses", headers=as_service(key),
                                   json={"user_id": "u", "promotion_code": code}), 422,
                 "invalid_promo_code")

    act = {"user_id": "u", "currency": "coins", "amount": 5, "category": "slots",
           "reference_id": "r1"}
    _problem(await client.post("/internal/v1/bonuses/activity", json=act,
                               headers=as_service(reader)), 403, "forbidden")
    for change in ({"amount": 0}, {"amount": 1.5}, {"category": "Slots!"},
                   {"category": ""}, {"reference_id": ""}, {"user_id": None}):
        _problem(await client.post("/internal/v1/bonuses/activity", json={**act, **change},
                                   headers=as_service(key)), 422, "validation_error")
    _problem(await client.post("/internal/v1/bonuses/activity",
                               json={**act, "currency": "gold"}, headers=as_service(key)),
             422, "unknown_currency")

    ref = {"referrer_user_id": "a", "referee_user_id": "b"}
    _problem(await client.post("/internal/v1/referrals", json=ref,
                               headers=as_service(reader)), 403, "forbidden")
    for body in ({}, {"referrer_user_id": "a"}, {**ref, "referee_user_id": "bad id"},
                 {**ref, "x": 1}):
        _problem(await client.post("/internal/v1/referrals", json=body,
                                   headers=as_service(key)), 422, "validation_error")
    _problem(await client.get("/internal/v1/referrals/nobody", headers=as_service(key)), 404,
             "not_found")
    _problem(await client.get("/internal/v1/referrals/nobody", headers=as_service(reader)),
             403, "forbidden")

    debit = {"user_id": "u", "currency": "coins", "amount": 1, "description": "d",
             "reference_id": "r"}
    for change in ({"use_bonus": "no"}, {"category": "UPPER"}, {"category": 7}):
        _problem(await client.post("/internal/v1/wallet/debit", json={**debit, **change},
                                   headers=as_service(key)), 422, "validation_error")
    assert await _moved(settings.database_url) == before
    await check(settings.database_url)


async def test_admin_routes(client: httpx.AsyncClient, make_key: MakeKey,
                            settings: Settings) -> None:
    key = await make_key()
    promo = await promotion(client, code="ADM", amount=10)
    bonus = await granted(client, key, "v", "ADM")
    before = await _moved(settings.database_url)
    base = {"code": "NEW1", "kind": "manual", "currency": "coins", "description": "d",
            "amount": 5}
    user = auth(user_token("v"))
    _problem(await client.post("/admin/v1/promotions", json=base), 401, "unauthorized")
    _problem(await client.post("/admin/v1/promotions", json=base, headers=user), 403,
             "forbidden")
    _problem(await client.post("/admin/v1/promotions", json=base, headers=AUDITOR), 403,
             "forbidden")
    bad: list[dict[str, Any]] = [
        {"kind": "lottery"}, {"code": "a b"}, {"code": "ab"}, {"amount": None},
        {"kind": "deposit_match", "amount": None},  # needs percent_bp
        {"kind": "deposit_match", "percent_bp": 100},  # and no amount
        {"percent_bp": 100}, {"max_bonus": 5}, {"min_deposit": 5}, {"automatic": True},
        {"kind": "signup", "claimable": True}, {"wagering_multiplier": -1},
        {"wagering_multiplier": 1001}, {"contributions": {"Slots": 100}},
        {"contributions": {"slots": 10001}}, {"expires_in_days": 0},
        {"per_user_limit": 0}, {"budget": 0}, {"starts_at": "yesterday"},
        {"starts_at": "2026-02-01T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"},
        {"description": ""}, {"unknown": 1},
    ]
    for change in bad:
        r = await client.post("/admin/v1/promotions", json={**base, **change}, headers=ADMIN)
        _problem(r, 422, "validation_error")
    _problem(await client.post("/admin/v1/promotions", json={**base, "currency": "gold"},
                               headers=ADMIN), 422, "unknown_currency")
    _problem(await client.post("/admin/v1/promotions", json={**base, "code": "adm"},
                               headers=ADMIN), 409, "promotion_code_taken")

    for query in ("?kind=x", "?active=maybe", "?limit=0"):
        _problem(await client.get(f"/admin/v1/promotions{query}", headers=ADMIN), 422,
                 "validation_error")
    _problem(await client.get(f"/admin/v1/promotions/{NO_SUCH}", headers=ADMIN), 404,
             "not_found")
    patch = f"/admin/v1/promotions/{promo['id']}"
    for body in ({"wagering_multiplier": None}, {"code": "OTHER"}, {"kind": "signup"},
                 {"amount": 0}, {"percent_bp": 100}, {"active": "no"}):
        _problem(await client.patch(patch, json=body, headers=ADMIN), 422, "validation_error")
    _problem(await client.patch(patch, json={"active": False}, headers=AUDITOR), 403,
             "forbidden")
    _problem(await client.patch(f"/admin/v1/promotions/{NO_SUCH}", json={"active": False},
                                headers=ADMIN), 404, "not_found")

    _problem(await client.post("/admin/v1/bonuses", json={"user_id": "v"},
                               headers=as_admin()), 422, "validation_error")
    _problem(await client.post("/admin/v1/bonuses", json={
        "user_id": "v", "promotion_code": "ADM"}, headers={**AUDITOR,
                                                            "Idempotency-Key": uuid.uuid4().hex}),
        403, "forbidden")
    for query in ("?status=gone", "?user_id=bad%20id", "?limit=1000"):
        _problem(await client.get(f"/admin/v1/bonuses{query}", headers=ADMIN), 422,
                 "validation_error")
    _problem(await client.get(f"/admin/v1/bonuses/{NO_SUCH}", headers=ADMIN), 404,
             "not_found")
    forfeit = f"/admin/v1/bonuses/{bonus['id']}/forfeit"
    for body in ({}, {"reason": ""}, {"reason": 5}):
        _problem(await client.post(forfeit, json=body, headers=ADMIN), 422,
                 "validation_error")
    _problem(await client.post(forfeit, json={"reason": "x"}, headers=AUDITOR), 403,
             "forbidden")
    _problem(await client.post(f"/admin/v1/bonuses/{NO_SUCH}/forfeit", json={"reason": "x"},
                               headers=ADMIN), 404, "not_found")
    assert (await client.get(f"/admin/v1/bonuses/{bonus['id']}", headers=AUDITOR)
            ).json()["status"] == "active"  # auditors read
    assert await _moved(settings.database_url) == before
    await check(settings.database_url)
