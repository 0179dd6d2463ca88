"""Bonuses' tests: settings with the mock top-up provider (packages in coins), withdrawals
of coins (forfeit) and diamonds (block), and helpers that create promotions, move money and
read the tables straight, independently of the bonuses' own code."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.payments.providers.mock import payment_signature
from tests.conftest import TEST_JWT_SECRET, auth, user_token
from tests.invariants import assert_invariants, ledger_state_async

MOCK_WHSEC = "whsec_test_fake_bonus_3333333333"  # clearly fake: tests only
TIERS = {"0": {"requires": [], "withdrawals": True, "limits": {}}}
ADMIN = auth(user_token("ops-1", role="admin", mfa=True))
AUDITOR = auth(user_token("aud-1", role="auditor", mfa=True))
DEST = {"type": "bank", "iban": "DE89370400440532013000"}


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
        currencies="coins:0,diamonds:0,points:0",
        topup_providers="mock", mock_webhook_secret=MOCK_WHSEC,  # type: ignore[arg-type]
        topup_packages="p50:50:50:usd:coins,p100:100:99:usd:coins,"
                       "p1000:1000:799:usd:coins,p5000:5000:3999:usd:coins",
        public_url="http://test", kyc_tiers=json.dumps(TIERS),
        withdrawal_currencies="coins,diamonds",
        bonus_withdrawal_policy="forfeit,diamonds:block",
        bonus_spend_order="cash_first,points:bonus_first",
        shop_fee_bp=0, rate_limit_user="off", rate_limit_ip="off", inbox_poll_s=0)


def as_user(user: str, idem: str | None = None, **claims: Any) -> dict[str, str]:
    return {**auth(user_token(user, **claims)), "Idempotency-Key": idem or uuid.uuid4().hex}


def as_admin(idem: str | None = None) -> dict[str, str]:
    return {**ADMIN, "Idempotency-Key": idem or uuid.uuid4().hex}


def as_service(key: str, idem: str | None = None) -> dict[str, str]:
    return {"X-API-Key": key, "Idempotency-Key": idem or uuid.uuid4().hex}


async def promotion(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"code": f"P{uuid.uuid4().hex[:10]}", "kind": "manual", "currency": "coins",
            "description": "A test promotion", **fields}
    if body["kind"] != "deposit_match" and "amount" not in body:
        body["amount"] = 100
    r = await client.post("/admin/v1/promotions", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


async def grant(client: httpx.AsyncClient, key: str, user: str, code: str,
                idem: str | None = None, **extra: Any) -> httpx.Response:
    return await client.post("/internal/v1/bonuses", headers=as_service(key, idem),
                             json={"user_id": user, "promotion_code": code, **extra})


async def granted(client: httpx.AsyncClient, key: str, user: str, code: str,
                  **extra: Any) -> dict[str, Any]:
    r = await grant(client, key, user, code, **extra)
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


async def fund(client: httpx.AsyncClient, key: str, user: str, amount: int,
               currency: str = "coins") -> None:
    r = await client.post("/internal/v1/wallet/credit", json={
        "user_id": user, "currency": currency, "amount": amount, "description": "fund",
        "reference_id": "fund"}, headers=as_service(key))
    assert r.status_code == 201, r.text


async def debit(client: httpx.AsyncClient, key: str, user: str, amount: int,
                currency: str = "coins", idem: str | None = None,
                **extra: Any) -> httpx.Response:
    body = {"user_id": user, "currency": currency, "amount": amount, "description": "play",
            "reference_id": f"r-{uuid.uuid4().hex[:8]}", **extra}
    return await client.post("/internal/v1/wallet/debit", json=body,
                             headers=as_service(key, idem))


async def activity(client: httpx.AsyncClient, key: str, user: str, amount: int,
                   category: str = "slots", currency: str = "coins",
                   idem: str | None = None, reference_id: str | None = None
                   ) -> httpx.Response:
    return await client.post("/internal/v1/bonuses/activity", json={
        "user_id": user, "currency": currency, "amount": amount, "category": category,
        "reference_id": reference_id or f"round-{uuid.uuid4().hex[:8]}"},
        headers=as_service(key, idem))


async def wallet(client: httpx.AsyncClient, user: str, currency: str = "coins"
                 ) -> dict[str, int]:
    r = await client.get("/api/v1/wallet/balance", headers=auth(user_token(user)))
    assert r.status_code == 200, r.text
    found: dict[str, int] = r.json()["wallets"][currency]
    return found


async def my_bonuses(client: httpx.AsyncClient, user: str, query: str = ""
                     ) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/bonuses{query}", headers=auth(user_token(user)))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["data"]
    return found


async def topup(client: httpx.AsyncClient, user: str, package: str = "p1000",
                **extra: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/topups", headers=as_user(user),
                          json={"provider": "mock", "package_id": package, **extra})
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


async def pay(client: httpx.AsyncClient, user: str, order_id: str,
              payment_id: str | None = None) -> httpx.Response:
    """The client's verify call after the mock checkout: credits the order at once."""
    payment_id = payment_id or f"mockpay_{uuid.uuid4().hex}"
    return await client.post(f"/api/v1/topups/{order_id}/verify", headers=auth(user_token(user)),
                             json={"payment_id": payment_id, "signature": payment_signature(
                                 MOCK_WHSEC, order_id, payment_id)})


async def rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def account(url: str, address: str, currency: str = "coins") -> int:
    found = await rows(url, "SELECT balance FROM accounts WHERE address = :a AND currency = :c",
                       a=address, c=currency)
    return int(found[0][0]) if found else 0


async def check(url: str) -> None:
    """The ledger's invariants, and the bonuses': every bonus wallet holds exactly what its
    active bonuses have left; no bonus row says more was converted or forfeited than was
    granted and returned."""
    assert_invariants(await ledger_state_async(url))
    wallets = {(a.split(":")[1], c): int(b) for a, c, b in await rows(
        url, "SELECT address, currency, balance FROM accounts WHERE address LIKE :p",
        p="user:%:bonus")}
    active: dict[tuple[str, str], int] = {}
    for u, c, r in await rows(url, "SELECT user_id, currency, remaining FROM bonuses "
                                   "WHERE status = 'active'"):
        active[(u, c)] = active.get((u, c), 0) + int(r)
    for k in set(wallets) | set(active):
        assert wallets.get(k, 0) == active.get(k, 0), (k, wallets, active)
    closed = await rows(url, "SELECT id, remaining FROM bonuses WHERE status <> 'active' "
                             "AND remaining <> 0")
    assert closed == []
