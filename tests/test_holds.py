"""Holds: reserve, capture in part or whole, void, expire, and races between them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.conftest import MakeKey, auth, user_token
from tests.invariants import assert_invariants, ledger_state_async


def _h(key: str, idem: str | None = None) -> dict[str, str]:
    return {"X-API-Key": key, "Idempotency-Key": idem or uuid.uuid4().hex}


async def _credit(client: httpx.AsyncClient, key: str, user: str, amount: int) -> None:
    r = await client.post("/internal/v1/wallet/credit", headers=_h(key), json={
        "user_id": user, "currency": "points", "amount": amount, "description": "fund",
        "reference_id": "fund"})
    assert r.status_code == 201, r.text


async def _hold(client: httpx.AsyncClient, key: str, user: str, amount: int,
                **extra: Any) -> httpx.Response:
    return await client.post("/internal/v1/holds", headers=_h(key), json={
        "user_id": user, "currency": "points", "amount": amount,
        "description": "Video call", "reference_id": "call_1", **extra})


async def _wallet(client: httpx.AsyncClient, key: str, user: str) -> dict[str, int]:
    r = await client.get(f"/internal/v1/wallet/balance/{user}", headers={"X-API-Key": key})
    wallet: dict[str, int] = r.json()["wallets"]["points"]
    return wallet


async def test_hold_reduces_available_and_debit_checks_it(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key()
    await _credit(client, key, "u", 100)
    r = await _hold(client, key, "u", 70)
    assert r.status_code == 201, r.text
    hold = r.json()
    assert hold["status"] == "held" and hold["amount"] == 70 and hold["expires_at"]
    assert hold["wallet"] == {"balance": 100, "held": 70, "available": 30}
    assert await _wallet(client, key, "u") == {"balance": 100, "held": 70, "available": 30,
                                               "bonus": 0}

    debit = await client.post("/internal/v1/wallet/debit", headers=_h(key), json={
        "user_id": "u", "currency": "points", "amount": 31, "description": "x",
        "reference_id": "x"})
    assert debit.status_code == 422 and debit.json()["code"] == "insufficient_funds"
    second = await _hold(client, key, "u", 31)
    assert second.status_code == 422 and second.json()["code"] == "insufficient_funds"
    transfer = await client.post("/internal/v1/transfers", headers=_h(key), json={
        "postings": [{"source": "user:u", "destination": "user:v", "amount": 31,
                      "currency": "points"}], "description": "x", "reference_id": "x"})
    assert transfer.status_code == 422
    ok = await client.post("/internal/v1/wallet/debit", headers=_h(key), json={
        "user_id": "u", "currency": "points", "amount": 30, "description": "x",
        "reference_id": "x"})
    assert ok.status_code == 201
    assert ok.json()["wallet"] == {"balance": 70, "held": 70, "available": 0}

    too_much = await _hold(client, key, "nobody", 1)
    assert too_much.status_code == 422 and too_much.json()["code"] == "insufficient_funds"


async def test_capture_in_part_then_twice_then_void(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key()
    await _credit(client, key, "u", 100)
    hold = (await _hold(client, key, "u", 80, destination="user:host")).json()
    r = await client.post(f"/internal/v1/holds/{hold['id']}/capture", headers=_h(key),
                          json={"amount": 50})
    assert r.status_code == 200, r.text
    captured = r.json()
    assert captured["status"] == "captured"
    assert captured["captured_amount"] == 50 and captured["released_amount"] == 30
    assert captured["transaction_id"]
    assert captured["wallet"] == {"balance": 50, "held": 0, "available": 50}
    assert (await _wallet(client, key, "host"))["balance"] == 50

    again = await client.post(f"/internal/v1/holds/{hold['id']}/capture", headers=_h(key))
    assert again.status_code == 409 and again.json()["code"] == "hold_not_open"
    void = await client.post(f"/internal/v1/holds/{hold['id']}/void", headers=_h(key))
    assert void.status_code == 409 and void.json()["code"] == "hold_not_open"

    # The user's history shows the captured 50, not the hold of 80.
    history = await client.get("/api/v1/wallet/transactions", headers=auth(user_token("u")))
    amounts = [e["amount"] for e in history.json()["data"]]
    assert amounts == [-50, 100]
    tx = await client.get(f"/internal/v1/transactions/{captured['transaction_id']}",
                          headers={"X-API-Key": key})
    assert tx.json()["postings"] == [{"source": "user:u", "destination": "user:host",
                                      "amount": 50, "currency": "points"}]
    assert tx.json()["kind"] == "payment"


async def test_capture_in_full_default_and_over_capture(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key("calls", "*")
    await _credit(client, key, "u", 100)
    hold = (await _hold(client, key, "u", 40)).json()
    over = await client.post(f"/internal/v1/holds/{hold['id']}/capture", headers=_h(key),
                             json={"amount": 41})
    assert over.status_code == 422 and over.json()["code"] == "capture_exceeds_hold"
    bad = await client.post(f"/internal/v1/holds/{hold['id']}/capture", headers=_h(key),
                            json={"amount": 0})
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    full = await client.post(f"/internal/v1/holds/{hold['id']}/capture", headers=_h(key))
    assert full.status_code == 200
    assert full.json()["captured_amount"] == 40
    acct = await client.get("/internal/v1/accounts/service:calls", headers={"X-API-Key": key})
    assert acct.json()["balances"]["points"]["balance"] == -100 + 40


async def test_void_releases_and_other_services_see_nothing(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key("calls", "*")
    other = await make_key("shop", "*")
    await _credit(client, key, "u", 100)
    hold = (await _hold(client, key, "u", 60)).json()
    for path in ("", "/capture", "/void"):
        method = client.get if path == "" else client.post
        r = await method(f"/internal/v1/holds/{hold['id']}{path}", headers=_h(other))
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await client.post(f"/internal/v1/holds/{hold['id']}/void", headers=_h(key))
    assert r.status_code == 200 and r.json()["status"] == "voided"
    assert r.json()["released_amount"] == 60
    assert await _wallet(client, key, "u") == {"balance": 100, "held": 0, "available": 100,
                                               "bonus": 0}
    got = await client.get(f"/internal/v1/holds/{hold['id']}", headers={"X-API-Key": key})
    assert got.json()["status"] == "voided"
    missing = await client.post("/internal/v1/holds/nope/capture", headers=_h(key))
    assert missing.status_code == 404


async def test_hold_scopes_and_idempotency(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    admin = await make_key("calls", "*")
    limited = await make_key("calls", "holds:write:usdt,holds:read")
    await _credit(client, admin, "u", 100)
    r = await _hold(client, limited, "u", 10)
    assert r.status_code == 403
    body = {"user_id": "u", "currency": "points", "amount": 10, "description": "x",
            "reference_id": "x"}
    first = await client.post("/internal/v1/holds", headers=_h(admin, "h-1"), json=body)
    again = await client.post("/internal/v1/holds", headers=_h(admin, "h-1"), json=body)
    assert first.status_code == 201 and again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert (await _wallet(client, admin, "u"))["held"] == 10
    cap1 = await client.post(f"/internal/v1/holds/{first.json()['id']}/capture",
                             headers=_h(admin, "c-1"))
    cap2 = await client.post(f"/internal/v1/holds/{first.json()['id']}/capture",
                             headers=_h(admin, "c-1"))
    assert cap1.status_code == 200 and cap2.content == cap1.content


async def test_expired_hold_releases_itself_and_cannot_be_captured(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key()
    await _credit(client, key, "u", 100)
    hold = (await _hold(client, key, "u", 90, expires_in_s=1)).json()
    for _ in range(50):
        await asyncio.sleep(0.1)
        got = (await client.get(f"/internal/v1/holds/{hold['id']}",
                                headers={"X-API-Key": key})).json()
        if got["status"] == "expired":
            break
    assert got["status"] == "expired"
    assert await _wallet(client, key, "u") == {"balance": 100, "held": 0, "available": 100,
                                               "bonus": 0}
    r = await client.post(f"/internal/v1/holds/{hold['id']}/capture", headers=_h(key))
    assert r.status_code == 409 and r.json()["code"] == "hold_not_open"


async def test_capture_and_void_racing_exactly_one_wins(
    client: httpx.AsyncClient, make_key: MakeKey, db_url: str
) -> None:
    key = await make_key()
    await _credit(client, key, "u", 1000)
    holds = [(await _hold(client, key, "u", 40)).json()["id"] for _ in range(20)]

    async def op(hold_id: str, action: str) -> httpx.Response:
        return await client.post(f"/internal/v1/holds/{hold_id}/{action}", headers=_h(key))

    answers = await asyncio.gather(*(op(h, a) for h in holds for a in ("capture", "void")))
    captured = 0
    for i in range(len(holds)):
        cap, void = answers[2 * i], answers[2 * i + 1]
        assert sorted([cap.status_code, void.status_code]) == [200, 409], (cap.text, void.text)
        loser = cap if cap.status_code == 409 else void
        assert loser.json()["code"] == "hold_not_open"
        captured += cap.status_code == 200
    wallet = await _wallet(client, key, "u")
    assert wallet == {"balance": 1000 - 40 * captured, "held": 0,
                      "available": 1000 - 40 * captured, "bonus": 0}
    assert_invariants(await ledger_state_async(db_url))


async def test_hold_to_the_users_own_wallet_is_refused(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key()
    await _credit(client, key, "u", 100)
    r = await _hold(client, key, "u", 10, destination="user:u")
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    assert await _wallet(client, key, "u") == {"balance": 100, "held": 0, "available": 100,
                                               "bonus": 0}
