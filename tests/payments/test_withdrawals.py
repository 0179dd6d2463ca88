"""Withdrawals: approved and paid, rejected, cancelled, racing, and every limit at its edge."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from coinpurse.config import Settings
from coinpurse.core.audit import audit_log
from tests.conftest import MakeKey, auth, user_token
from tests.invariants import assert_invariants, ledger_state_async
from tests.payments.conftest import ADMIN, AUDITOR, balance, headers, set_tier

DEST = {"type": "bank", "iban": "DE89370400440532013000"}


async def fund(client: httpx.AsyncClient, key: str, user: str, amount: int,
               currency: str = "diamonds") -> None:
    r = await client.post("/internal/v1/wallet/credit", headers={
        "X-API-Key": key, "Idempotency-Key": f"fund-{user}-{currency}-{amount}"}, json={
        "user_id": user, "currency": currency, "amount": amount, "description": "Earnings",
        "reference_id": "earn"})
    assert r.status_code == 201, r.text


async def withdraw(client: httpx.AsyncClient, user: str, amount: int,
                   currency: str = "diamonds", idem: str | None = None,
                   destination: dict[str, Any] | None = None) -> httpx.Response:
    return await client.post("/api/v1/withdrawals", headers=headers(user, idem), json={
        "currency": currency, "amount": amount, "destination": destination or DEST})


async def audit_actions(app: Any) -> list[str]:
    async with app.state.coinpurse.db.connect() as conn:
        return list((await conn.execute(select(audit_log.c.action).order_by(audit_log.c.id))
                     ).scalars().all())


async def account(client: httpx.AsyncClient, key: str, address: str,
                  currency: str = "diamonds") -> int:
    r = await client.get(f"/internal/v1/accounts/{address}", headers={"X-API-Key": key})
    value: int = r.json()["balances"][currency]["balance"]
    return value


async def test_approved_and_paid(client: httpx.AsyncClient, app: Any, settings: Settings,
                                 make_key: MakeKey) -> None:
    key = await make_key()
    await set_tier(settings, "host", 1)
    await fund(client, key, "host", 800)
    r = await withdraw(client, "host", 500, idem="w-1")
    assert r.status_code == 201, r.text
    w = r.json()
    assert w["status"] == "pending" and w["destination"] == DEST
    assert w["wallet"] == {"balance": 800, "held": 500, "available": 300}
    again = await withdraw(client, "host", 500, idem="w-1")
    assert again.content == r.content and again.headers["idempotent-replayed"] == "true"

    queue = await client.get("/admin/v1/withdrawals?status=pending", headers=AUDITOR)
    assert [x["id"] for x in queue.json()["data"]] == [w["id"]]
    assert (await client.post(f"/admin/v1/withdrawals/{w['id']}/approve",
                              headers=AUDITOR)).status_code == 403
    ok = await client.post(f"/admin/v1/withdrawals/{w['id']}/approve", headers=ADMIN)
    assert ok.status_code == 200, ok.text
    done = ok.json()
    assert done["status"] == "paid" and done["payout_reference"] == f"mock_payout_{w['id']}"
    assert done["decided_by"] == "ops-1" and done["transaction_id"]
    assert await balance(client, "host", "diamonds") == {"balance": 300, "held": 0,
                                                         "available": 300, "bonus": 0}
    assert await account(client, key, "platform:payouts") == 500
    twice = await client.post(f"/admin/v1/withdrawals/{w['id']}/approve", headers=ADMIN)
    assert twice.status_code == 409 and twice.json()["code"] == "withdrawal_not_pending"
    assert await audit_actions(app) == ["withdrawal.approve"]
    mine = await client.get(f"/api/v1/withdrawals/{w['id']}", headers=auth(user_token("host")))
    assert mine.json()["status"] == "paid"
    assert (await client.get(f"/api/v1/withdrawals/{w['id']}",
                             headers=auth(user_token("x")))).status_code == 404
    assert_invariants(await ledger_state_async(settings.database_url))


async def test_rejected_and_cancelled(client: httpx.AsyncClient, app: Any,
                                      settings: Settings, make_key: MakeKey) -> None:
    key = await make_key()
    await set_tier(settings, "h", 1)
    await fund(client, key, "h", 300)
    a = (await withdraw(client, "h", 100)).json()
    b = (await withdraw(client, "h", 100)).json()
    no_reason = await client.post(f"/admin/v1/withdrawals/{a['id']}/reject", headers=ADMIN,
                                  json={})
    assert no_reason.status_code == 422
    rej = await client.post(f"/admin/v1/withdrawals/{a['id']}/reject", headers=ADMIN,
                            json={"reason": "Name does not match the bank account"})
    assert rej.status_code == 200 and rej.json()["status"] == "rejected"
    assert rej.json()["reason"] == "Name does not match the bank account"
    cancel = await client.post(f"/api/v1/withdrawals/{b['id']}/cancel",
                               headers=auth(user_token("h")))
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    again = await client.post(f"/api/v1/withdrawals/{b['id']}/cancel",
                              headers=auth(user_token("h")))
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    late = await client.post(f"/admin/v1/withdrawals/{b['id']}/approve", headers=ADMIN)
    assert late.status_code == 409 and late.json()["withdrawal_status"] == "cancelled"
    assert late.json()["status"] == 409  # RFC 9457's status is never overwritten
    cancel_rejected = await client.post(f"/api/v1/withdrawals/{a['id']}/cancel",
                                        headers=auth(user_token("h")))
    assert cancel_rejected.status_code == 409
    other = await client.post(f"/api/v1/withdrawals/{a['id']}/cancel",
                              headers=auth(user_token("intruder")))
    assert other.status_code == 404
    assert await balance(client, "h", "diamonds") == {"balance": 300, "held": 0,
                                                      "available": 300, "bonus": 0}
    assert await audit_actions(app) == ["withdrawal.reject"]
    listed = await client.get("/api/v1/withdrawals", headers=auth(user_token("h")))
    assert [x["status"] for x in listed.json()["data"]] == ["cancelled", "rejected"]


async def test_approve_and_cancel_racing(client: httpx.AsyncClient, settings: Settings,
                                         make_key: MakeKey) -> None:
    key = await make_key()
    await set_tier(settings, "rc", 2)
    await fund(client, key, "rc", 1000)
    wins = {"approve": 0, "cancel": 0}
    for _ in range(6):
        w = (await withdraw(client, "rc", 100)).json()
        approve, cancel = await asyncio.gather(
            client.post(f"/admin/v1/withdrawals/{w['id']}/approve", headers=ADMIN),
            client.post(f"/api/v1/withdrawals/{w['id']}/cancel",
                        headers=auth(user_token("rc"))))
        statuses = sorted([approve.status_code, cancel.status_code])
        assert statuses == [200, 409], (approve.text, cancel.text)
        wins["approve" if approve.status_code == 200 else "cancel"] += 1
        final = (await client.get(f"/api/v1/withdrawals/{w['id']}",
                                  headers=auth(user_token("rc")))).json()["status"]
        assert final == ("paid" if approve.status_code == 200 else "cancelled")
    paid = wins["approve"] * 100
    assert await balance(client, "rc", "diamonds") == {"balance": 1000 - paid, "held": 0,
                                                       "available": 1000 - paid, "bonus": 0}
    assert await account(client, key, "platform:payouts") == paid
    assert_invariants(await ledger_state_async(settings.database_url))


async def test_withdrawal_limits_at_their_edges(client: httpx.AsyncClient,
                                                settings: Settings,
                                                make_key: MakeKey) -> None:
    key = await make_key()
    await fund(client, key, "lim", 10_000)
    await fund(client, key, "lim", 10_000, "points")
    tier0 = await withdraw(client, "lim", 10)
    assert tier0.status_code == 403 and tier0.json()["code"] == "kyc_required"
    assert tier0.json()["required_tier"] == 1
    await set_tier(settings, "lim", 1)
    # diamonds: 10 to 5000 per withdrawal; tier 1: withdraw_daily 1000.
    low = await withdraw(client, "lim", 9)
    assert low.status_code == 422 and low.json()["limit"] == "min_amount"
    assert (await withdraw(client, "lim", 10)).status_code == 201
    assert (await withdraw(client, "lim", 990)).status_code == 201  # 1000: the edge
    day = await withdraw(client, "lim", 10)
    assert day.status_code == 422 and day.json()["code"] == "limit_exceeded"
    assert day.json()["limit"] == "withdraw_daily" and day.json()["used"] == 1000
    await set_tier(settings, "lim", 2)  # no daily limit at tier 2; the maximum stays
    high = await withdraw(client, "lim", 5001)
    assert high.status_code == 422 and high.json()["limit"] == "max_amount"
    assert (await withdraw(client, "lim", 5000)).status_code == 201
    # points: tier 1 withdraw_monthly 1500.
    await set_tier(settings, "lim", 1)
    assert (await withdraw(client, "lim", 1000, "points")).status_code == 201
    assert (await withdraw(client, "lim", 500, "points")).status_code == 201
    month = await withdraw(client, "lim", 1, "points")
    assert month.json()["limit"] == "withdraw_monthly"
    # A cancelled withdrawal gives its room back.
    mine = await client.get("/api/v1/withdrawals", headers=auth(user_token("lim")))
    last = mine.json()["data"][0]
    await client.post(f"/api/v1/withdrawals/{last['id']}/cancel",
                      headers=auth(user_token("lim")))
    assert (await withdraw(client, "lim", 500, "points")).status_code == 201

    for body, code in [
        ({"currency": "coins", "amount": 10, "destination": DEST}, "currency_not_withdrawable"),
        ({"currency": "gold", "amount": 10, "destination": DEST}, "unknown_currency"),
        ({"currency": "diamonds", "amount": 10, "destination": {}}, "validation_error"),
        ({"currency": "diamonds", "amount": 10, "destination": {"x": "y" * 3000}},
         "validation_error"),
        ({"currency": "diamonds", "amount": -5, "destination": DEST}, "validation_error"),
    ]:
        r = await client.post("/api/v1/withdrawals", headers=headers("lim"), json=body)
        assert r.status_code == 422 and r.json()["code"] == code, (body, r.text)
    poor = await withdraw(client, "nobody", 10)
    assert poor.json()["code"] == "kyc_required"
    await set_tier(settings, "nobody", 1)
    poor = await withdraw(client, "nobody", 10)
    assert poor.status_code == 422 and poor.json()["code"] == "insufficient_funds"


@pytest.mark.parametrize("destination", [
    b'{"iban": "DE89\\ud800"}', b'{"amount": 18446744073709551616}',
    b'{"amount": -9223372036854775809}', b'{"x": ' + b"[" * 300 + b"]" * 300 + b"}",
])
async def test_destination_that_is_not_plain_json(client: httpx.AsyncClient,
                                                  destination: bytes) -> None:
    """A lone surrogate or an integer beyond 64 bits failed the size check as a 500."""
    body = b'{"currency": "diamonds", "amount": 10, "destination": ' + destination + b"}"
    r = await client.post("/api/v1/withdrawals", content=body, headers={
        **headers("odd"), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    # In our words, not the JSON codec's.
    assert not any(raw in r.text for raw in ("UTF-8", "64-bit range", "Recursion limit"))


async def test_daily_limit_holds_under_concurrency(client: httpx.AsyncClient,
                                                   settings: Settings,
                                                   make_key: MakeKey) -> None:
    key = await make_key()
    await set_tier(settings, "cc", 1)
    await fund(client, key, "cc", 5000)
    results = await asyncio.gather(*[withdraw(client, "cc", 200) for _ in range(10)])
    codes = sorted(r.status_code for r in results)
    assert codes == [201] * 5 + [422] * 5, [r.text for r in results]
    assert await balance(client, "cc", "diamonds") == {"balance": 5000, "held": 1000,
                                                       "available": 4000, "bonus": 0}


async def test_payout_failure_keeps_it_approved(client: httpx.AsyncClient,
                                                settings: Settings,
                                                make_key: MakeKey) -> None:
    key = await make_key()
    await set_tier(settings, "pf", 1)
    await fund(client, key, "pf", 100)
    w = (await withdraw(client, "pf", 100, destination={"mock_fail": True})).json()
    r = await client.post(f"/admin/v1/withdrawals/{w['id']}/approve", headers=ADMIN)
    assert r.status_code == 200
    assert r.json()["status"] == "approved" and "fail" in r.json()["payout_error"]
    retry = await client.post(f"/admin/v1/withdrawals/{w['id']}/approve", headers=ADMIN)
    assert retry.json()["status"] == "approved"
    assert await account(client, key, "platform:payouts") == 100  # captured once
