"""Bonuses over GraphQL: claiming a code (with REST's idempotency), the caller's bonuses and
the bonus wallet in `wallets`; nobody else's."""

from __future__ import annotations

import httpx

from tests.conftest import auth, user_token
from tests.graphql.conftest import Gql, codes, user

ADMIN = auth(user_token("ops-1", role="admin", mfa=True))
CLAIM = """mutation($code: String!, $key: String!) { claimBonus(code: $code,
    idempotencyKey: $key) { replayed bonus { id promotionCode currency granted remaining
    status progress { wagered required percent } } } }"""
MINE = """{ me { wallets { currency balance bonus } bonuses { edges { cursor node { id
    status granted } } pageInfo { hasNextPage } } } }"""


async def test_claim_a_code_and_see_the_bonus(client: httpx.AsyncClient, gql: Gql) -> None:
    r = await client.post("/admin/v1/promotions", headers=ADMIN, json={
        "code": "WELCOME40", "kind": "manual", "currency": "points", "amount": 40,
        "description": "Welcome", "claimable": True})
    assert r.status_code == 201, r.text

    first = await gql(CLAIM, {"code": "WELCOME40", "key": "c1"}, user("alice"))
    assert "errors" not in first, first
    claimed = first["data"]["claimBonus"]
    assert claimed["replayed"] is False
    assert claimed["bonus"]["promotionCode"] == "WELCOME40"
    assert claimed["bonus"]["granted"] == claimed["bonus"]["remaining"] == 40
    again = (await gql(CLAIM, {"code": "WELCOME40", "key": "c1"}, user("alice")))
    assert again["data"]["claimBonus"] == {**claimed, "replayed": True}

    me = (await gql(MINE, headers=user("alice")))["data"]["me"]
    points = next(w for w in me["wallets"] if w["currency"] == "points")
    assert points == {"currency": "points", "balance": 0, "bonus": 40}
    rest = (await client.get("/api/v1/wallet/balance", headers=user("alice"))).json()
    assert rest["wallets"]["points"]["bonus"] == 40
    assert [e["node"]["id"] for e in me["bonuses"]["edges"]] == [claimed["bonus"]["id"]]
    listed = (await client.get("/api/v1/bonuses", headers=user("alice"))).json()["data"]
    assert [b["id"] for b in listed] == [claimed["bonus"]["id"]]

    other = (await gql(MINE, headers=user("carol")))["data"]["me"]
    assert other["bonuses"]["edges"] == []
    assert all(w["bonus"] == 0 for w in other["wallets"])
    assert codes(await gql(CLAIM, {"code": "NOPE", "key": "c2"}, user("alice"))) == [
        "invalid_promo_code"]
    assert codes(await gql(CLAIM, {"code": "bad code!", "key": "c3"}, user("alice"))) == [
        "validation_error"]
    assert codes(await gql(CLAIM, {"code": "WELCOME40", "key": "c4"})) == ["unauthorized"]
