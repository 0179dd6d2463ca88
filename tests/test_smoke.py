"""The service starts on both databases and answers a credit and a balance read."""

from __future__ import annotations

import httpx

from tests.conftest import MakeKey, auth, user_token


async def test_credit_then_balance(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    r = await client.post(
        "/internal/v1/wallet/credit",
        headers={"X-API-Key": key, "Idempotency-Key": "smoke-1"},
        json={"user_id": "u1", "currency": "points", "amount": 100,
              "description": "Welcome", "reference_id": "r1"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["balance_after"] == 100
    r = await client.get("/api/v1/wallet/balance", headers=auth(user_token("u1")))
    assert r.status_code == 200
    assert r.json()["wallets"]["points"] == {"balance": 100, "held": 0, "available": 100,
                                                "bonus": 0}
