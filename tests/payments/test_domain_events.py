"""The domains write their events in the same commit as their change: top-ups, withdrawals
and KYC decisions reach the event log (``GET /internal/v1/events``) exactly once each."""

from __future__ import annotations

from typing import Any

import httpx

from coinpurse.config import Settings
from tests.conftest import MakeKey, auth, user_token
from tests.payments.conftest import ADMIN, drain, headers, mock_event, mock_headers, set_tier

DEST = {"type": "bank", "iban": "DE89370400440532013000"}


async def log(client: httpx.AsyncClient, key: str, types: str) -> list[dict[str, Any]]:
    r = await client.get("/internal/v1/events", headers={"X-API-Key": key},
                         params={"types": types, "limit": 1000})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["data"]
    return found


async def test_topup_events(client: httpx.AsyncClient, app: Any, make_key: MakeKey) -> None:
    key = await make_key()
    orders = []
    for idem in ("t-1", "t-2"):
        r = await client.post("/api/v1/topups", json={"provider": "mock", "package_id": "big"},
                              headers=headers("ev-topup", idem))
        assert r.status_code == 201, r.text
        orders.append(r.json())
    paid, declined = orders
    body = mock_event("payment.succeeded", paid["id"], amount=799, payment_id="mockpay_ev")
    for _ in range(2):  # redelivered: still one credit, one event
        await client.post("/webhooks/mock", content=body, headers=mock_headers(body))
    await client.post(f"/mock-checkout/{declined['id']}/decline")
    await drain(app)
    refund = mock_event("refund.succeeded", paid["id"], amount=799, payment_id="mockpay_ev")
    await client.post("/webhooks/mock", content=refund, headers=mock_headers(refund))
    await drain(app)
    found = await log(client, key, "topup.*")
    assert [e["type"] for e in found] == ["topup.succeeded", "topup.failed", "topup.refunded"]
    ok, failed, refunded = (e["data"] for e in found)
    assert ok["order_id"] == paid["id"] and ok["user_id"] == "ev-topup"
    assert (ok["amount"], ok["bonus"], ok["currency"], ok["status"]) == (1000, 200, "coins",
                                                                          "succeeded")
    credit = await log(client, key, "transaction.posted")
    assert ok["transaction_id"] == credit[0]["data"]["id"]
    assert failed["order_id"] == declined["id"] and failed["status"] == "failed"
    assert refunded["reason"] == "refund" and refunded["reversed_amount"] == 1200


async def test_withdrawal_and_kyc_events(client: httpx.AsyncClient, settings: Settings,
                                         make_key: MakeKey) -> None:
    key = await make_key()
    await set_tier(settings, "ev-host", 1)
    r = await client.post("/internal/v1/wallet/credit", headers={
        "X-API-Key": key, "Idempotency-Key": "fund"}, json={
        "user_id": "ev-host", "currency": "diamonds", "amount": 900, "description": "d",
        "reference_id": "r"})
    assert r.status_code == 201
    made = []
    for n in range(3):
        w = await client.post("/api/v1/withdrawals", headers=headers("ev-host", f"w{n}"),
                              json={"currency": "diamonds", "amount": 100 + n,
                                    "destination": DEST})
        assert w.status_code == 201, w.text
        made.append(w.json()["id"])
    paid, rejected, cancelled = made
    assert (await client.post(f"/admin/v1/withdrawals/{paid}/approve",
                              headers=ADMIN)).status_code == 200
    assert (await client.post(f"/admin/v1/withdrawals/{rejected}/reject", headers=ADMIN,
                              json={"reason": "wrong account"})).status_code == 200
    me = auth(user_token("ev-host"))
    for _ in range(2):  # cancelling twice is harmless, and writes one event
        assert (await client.post(f"/api/v1/withdrawals/{cancelled}/cancel",
                                  headers=me)).status_code == 200
    found = await log(client, key, "withdrawal.*")
    assert [(e["type"], e["data"]["withdrawal_id"]) for e in found] == [
        ("withdrawal.requested", paid), ("withdrawal.requested", rejected),
        ("withdrawal.requested", cancelled), ("withdrawal.paid", paid),
        ("withdrawal.rejected", rejected), ("withdrawal.cancelled", cancelled)]
    assert found[4]["data"]["reason"] == "wrong account"
    assert found[3]["data"]["payout_reference"] == f"mock_payout_{paid}"
    assert "destination" not in found[0]["data"]  # payout details stay out of the log

    user = auth(user_token("ev-kyc"))
    sent = await client.post("/api/v1/kyc", headers=user, json={
        "tier": 1, "full_name": "Ada Lovelace", "date_of_birth": "1990-12-10",
        "country": "GB"})
    assert sent.status_code == 201, sent.text
    sid = sent.json()["id"]
    assert (await client.post(f"/admin/v1/kyc/submissions/{sid}/approve", headers=ADMIN,
                              json={})).status_code == 200
    [kyc] = await log(client, key, "kyc.*")
    assert kyc["type"] == "kyc.approved"
    assert kyc["data"] == {"submission_id": sid, "user_id": "ev-kyc", "tier": 1,
                           "reason": None, "decided_at": kyc["data"]["decided_at"]}
    assert "full_name" not in str(kyc["data"])


async def test_a_withdrawal_whose_hold_expires_writes_withdrawal_expired(
        client: httpx.AsyncClient, app: Any, settings: Settings, make_key: MakeKey) -> None:
    """The expiry job records it (and its event) without anyone looking at the withdrawal;
    running it again, or an operator's approval after it, writes nothing more."""
    from datetime import timedelta

    from coinpurse.core.clock import utcnow
    from coinpurse.holds.service import Holds
    from coinpurse.withdrawals.service import expire_lapsed

    key = await make_key()
    await set_tier(settings, "ev-late", 1)
    r = await client.post("/internal/v1/wallet/credit", headers={
        "X-API-Key": key, "Idempotency-Key": "fund-late"}, json={
        "user_id": "ev-late", "currency": "diamonds", "amount": 500, "description": "d",
        "reference_id": "r"})
    assert r.status_code == 201
    w = await client.post("/api/v1/withdrawals", headers=headers("ev-late", "late-1"),
                          json={"currency": "diamonds", "amount": 200, "destination": DEST})
    assert w.status_code == 201, w.text
    wid = w.json()["id"]
    state = app.state.coinpurse
    assert await expire_lapsed(state.db) == 0  # its hold is still open
    later = utcnow() + timedelta(seconds=settings.withdrawal_hold_ttl_s + 60)
    assert await Holds(state.db, state.ledger).expire_due(now=later) == 1
    assert await expire_lapsed(state.db) == 1
    assert await expire_lapsed(state.db) == 0
    [expired] = [e for e in await log(client, key, "withdrawal.*")
                 if e["type"] == "withdrawal.expired"]
    assert expired["data"]["withdrawal_id"] == wid and expired["data"]["status"] == "expired"
    assert expired["data"]["reason"] == "the hold expired before a decision"
    me = await client.get(f"/api/v1/withdrawals/{wid}", headers=auth(user_token("ev-late")))
    assert me.json()["status"] == "expired"
    late = await client.post(f"/admin/v1/withdrawals/{wid}/approve", headers=ADMIN)
    assert late.status_code == 409, late.text
    assert len(await log(client, key, "withdrawal.expired")) == 1
    balance = await client.get("/api/v1/wallet/balance", headers=auth(user_token("ev-late")))
    assert balance.json()["wallets"]["diamonds"]["available"] == 500
