"""Top-ups: the mock flow end to end, Stripe and Razorpay against a local fake of their API,
exactly-once credits under redelivery and races, refunds, disputes, and top-up limits."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from coinpurse.config import Settings
from tests.conftest import MakeKey, auth, user_token
from tests.fakes.providers import FakeProviders
from tests.invariants import assert_invariants, ledger_state_async
from tests.payments.conftest import (
    ADMIN,
    AUDITOR,
    RZP_WHSEC,
    STRIPE_WHSEC_NEW,
    STRIPE_WHSEC_OLD,
    balance,
    drain,
    headers,
    inbox_rows,
    mock_event,
    mock_headers,
    razorpay_event,
    razorpay_payment_signature,
    razorpay_sign,
    stripe_event,
    stripe_sign,
)


async def topup(client: httpx.AsyncClient, user: str, provider: str = "mock",
                package: str = "big", idem: str | None = None, **body: Any) -> dict[str, Any]:
    payload = {"provider": provider, **({"package_id": package} if package else {}), **body}
    r = await client.post("/api/v1/topups", json=payload, headers=headers(user, idem))
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


async def order_of(client: httpx.AsyncClient, user: str, order_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/v1/topups/{order_id}", headers=auth(user_token(user)))
    assert r.status_code == 200, r.text
    order: dict[str, Any] = r.json()
    return order


async def credits(settings: Settings, order_id: str) -> int:
    state = await ledger_state_async(settings.database_url)
    assert_invariants(state)
    from sqlalchemy import func, select

    from coinpurse.core.db import create_engine
    from coinpurse.ledger.tables import transactions

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            n = (await conn.execute(select(func.count()).select_from(transactions).where(
                transactions.c.reference_id == order_id, transactions.c.kind == "topup"))
                 ).scalar_one()
    finally:
        await engine.dispose()
    return int(n)


async def test_packages(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/topup/packages", headers=auth(user_token("u")))
    assert r.status_code == 200
    body = r.json()
    big = next(p for p in body["data"] if p["id"] == "big")
    assert big == {"id": "big", "currency": "coins", "amount": 1000, "bonus": 200,
                   "total": 1200, "price": {"amount": 799, "currency": "usd"}}
    assert body["rates"] == [{"currency": "coins", "per": 10,
                              "price": {"amount": 9, "currency": "usd"}}]
    assert body["providers"] == ["mock", "stripe", "razorpay"]
    assert (await client.get("/api/v1/topup/packages")).status_code == 401


async def test_mock_flow_end_to_end(client: httpx.AsyncClient, app: Any,
                                    settings: Settings) -> None:
    order = await topup(client, "alice")
    assert order["status"] == "created"
    assert order["checkout_url"] == f"http://test/mock-checkout/{order['id']}"
    page = await client.get(urlsplit(order["checkout_url"]).path)
    assert page.status_code == 200 and "Pay</button>" in page.text
    assert "1000 coins + 200 bonus" in page.text

    paid = await client.post(f"/mock-checkout/{order['id']}/pay")
    assert paid.status_code == 303
    query = parse_qs(urlsplit(paid.headers["location"]).query)
    assert query["order_id"] == [order["id"]] and query["status"] == ["success"]
    # The webhook is in the inbox; the coins arrive when the worker applies it.
    rows = await inbox_rows(app)
    assert [(r.provider, r.event_type, r.status) for r in rows] == [
        ("mock", "payment.succeeded", "received")]
    assert (await balance(client, "alice"))["balance"] == 0
    assert await drain(app) == 1
    done = await order_of(client, "alice", order["id"])
    assert done["status"] == "succeeded" and done["transaction_id"]
    assert await balance(client, "alice") == {"balance": 1200, "held": 0, "available": 1200,
                                             "bonus": 0}

    # The client's verify call afterwards finds it credited: nothing more.
    again = await client.post(f"/api/v1/topups/{order['id']}/verify", json={
        "payment_id": query["payment_id"][0], "signature": query["signature"][0]},
        headers=auth(user_token("alice")))
    assert again.status_code == 200 and again.json()["status"] == "succeeded"
    assert await credits(settings, order["id"]) == 1
    tx = (await client.get("/api/v1/wallet/transactions", headers=auth(user_token("alice"))))
    assert sorted(e["amount"] for e in tx.json()["data"]) == [200, 1000]

    mine = await client.get("/api/v1/topups", headers=auth(user_token("alice")))
    assert [o["id"] for o in mine.json()["data"]] == [order["id"]]
    other = await client.get(f"/api/v1/topups/{order['id']}", headers=auth(user_token("bob")))
    assert other.status_code == 404


async def test_mock_decline_and_verify_first(client: httpx.AsyncClient, app: Any,
                                            settings: Settings) -> None:
    declined = await topup(client, "u")
    r = await client.post(f"/mock-checkout/{declined['id']}/decline")
    assert r.status_code == 303 and "status=cancel" in r.headers["location"]
    await drain(app)
    assert (await order_of(client, "u", declined["id"]))["status"] == "failed"

    order = await topup(client, "u", package="small")
    paid = await client.post(f"/mock-checkout/{order['id']}/pay")
    query = parse_qs(urlsplit(paid.headers["location"]).query)
    forged = await client.post(f"/api/v1/topups/{order['id']}/verify", json={
        "payment_id": query["payment_id"][0], "signature": "0" * 64},
        headers=auth(user_token("u")))
    assert forged.status_code == 400 and forged.json()["code"] == "invalid_signature"
    ok = await client.post(f"/api/v1/topups/{order['id']}/verify", json={
        "payment_id": query["payment_id"][0], "signature": query["signature"][0]},
        headers=auth(user_token("u")))
    assert ok.status_code == 200 and ok.json()["status"] == "succeeded"
    await drain(app)  # the webhook comes second: replayed, nothing more
    assert (await inbox_rows(app))[-1].status == "processed"
    assert (await balance(client, "u"))["balance"] == 100
    assert await credits(settings, order["id"]) == 1


async def test_topup_idempotency_and_bad_input(client: httpx.AsyncClient) -> None:
    first = await client.post("/api/v1/topups", json={"package_id": "small"},
                              headers=headers("u", "k1"))
    again = await client.post("/api/v1/topups", json={"package_id": "small"},
                              headers=headers("u", "k1"))
    assert first.status_code == 201 and again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post("/api/v1/topups", json={"package_id": "big"},
                              headers=headers("u", "k1"))
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    for body, code in [
        ({"package_id": "nope"}, "validation_error"),
        ({}, "validation_error"),
        ({"package_id": "small", "amount": 10, "currency": "coins"}, "validation_error"),
        ({"amount": 15, "currency": "coins"}, "validation_error"),  # not a multiple of 10
        ({"amount": 10, "currency": "diamonds"}, "validation_error"),  # no rate
        ({"amount": 10, "currency": "gold"}, "unknown_currency"),
        ({"package_id": "small", "provider": "paypal"}, "validation_error"),
        ({"amount": 1.5, "currency": "coins"}, "validation_error"),
    ]:
        r = await client.post("/api/v1/topups", json=body, headers=headers("u"))
        assert r.status_code == 422 and r.json()["code"] == code, (body, r.text)
    by_amount = await client.post("/api/v1/topups", json={"amount": 50, "currency": "coins"},
                                  headers=headers("u"))
    assert by_amount.status_code == 201
    assert by_amount.json()["price"] == {"amount": 45, "currency": "usd"}
    missing = await client.post("/api/v1/topups", json={"package_id": "small"},
                                headers=auth(user_token("u")))
    assert missing.status_code == 422


async def test_stripe_checkout_and_webhook(client: httpx.AsyncClient, app: Any,
                                          settings: Settings, fakes: FakeProviders) -> None:
    order = await topup(client, "s", provider="stripe")
    session_id = order["client_params"]["session_id"]
    assert order["checkout_url"] == f"https://checkout.stripe.test/c/pay/{session_id}"
    (_, _, sent), = fakes.state.requests
    assert sent["line_items[0][price_data][unit_amount]"] == "799"
    assert sent["line_items[0][price_data][currency]"] == "usd"
    assert sent["client_reference_id"] == order["id"]
    assert sent["metadata[order_id]"] == order["id"]

    # Verify before paying: Stripe says unpaid.
    early = await client.post(f"/api/v1/topups/{order['id']}/verify",
                              headers=auth(user_token("s")))
    assert early.status_code == 409 and early.json()["code"] == "payment_not_completed"
    session = fakes.state.pay_session(session_id)
    body = stripe_event("checkout.session.completed", session)
    r = await client.post("/webhooks/stripe", content=body,
                          headers={"Stripe-Signature": stripe_sign(body, STRIPE_WHSEC_NEW)})
    assert r.status_code == 200 and r.json()["duplicate"] is False
    verified = await client.post(f"/api/v1/topups/{order['id']}/verify",
                                 headers=auth(user_token("s")))
    assert verified.status_code == 200 and verified.json()["status"] == "succeeded"
    await drain(app)
    assert (await inbox_rows(app))[0].status == "processed"
    assert await credits(settings, order["id"]) == 1
    assert (await balance(client, "s"))["balance"] == 1200
    admin = await client.get(f"/admin/v1/payment-orders/{order['id']}", headers=ADMIN)
    assert admin.json()["provider_payment_id"] == session["payment_intent"]


async def test_stripe_signatures(client: httpx.AsyncClient) -> None:
    body = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})
    now = int(time.time())
    cases = [
        ({"Stripe-Signature": stripe_sign(body, STRIPE_WHSEC_NEW)}, body, 200),
        ({"Stripe-Signature": stripe_sign(body, STRIPE_WHSEC_NEW)}, body + b" ", 400),
        ({"Stripe-Signature": stripe_sign(body, "whsec_test_wrong")}, body, 400),
        ({}, body, 400),
        ({"Stripe-Signature": "garbage"}, body, 400),
        ({"Stripe-Signature": stripe_sign(body, STRIPE_WHSEC_NEW, now - 301)}, body, 400),
        ({"Stripe-Signature": stripe_sign(body, STRIPE_WHSEC_NEW, now - 250)}, body, 200),
        # During a rotation: signed with the old secret, still configured.
        ({"Stripe-Signature": stripe_sign(body, STRIPE_WHSEC_OLD)}, body, 200),
        # Stripe sends one v1 per active secret; one of them matching is enough.
        ({"Stripe-Signature": stripe_sign(body, "whsec_test_unknown", now) + ","
          + stripe_sign(body, STRIPE_WHSEC_NEW, now).split(",")[1]}, body, 200),
    ]
    for hdrs, content, status in cases:
        r = await client.post("/webhooks/stripe", content=content, headers=hdrs)
        assert r.status_code == status, (hdrs, r.text)
        if status == 400:
            assert r.json()["code"] == "invalid_signature"
    unknown = await client.post("/webhooks/paypal", content=body)
    assert unknown.status_code == 404


async def test_razorpay_order_verify_and_webhook(client: httpx.AsyncClient, app: Any,
                                                settings: Settings,
                                                fakes: FakeProviders) -> None:
    order = await topup(client, "r", provider="razorpay", package="rupee")
    params = order["client_params"]
    assert params["amount"] == 49900 and params["currency"] == "INR"
    assert order["checkout_url"] is None
    (_, _, sent), = fakes.state.requests
    assert sent == {"amount": 49900, "currency": "INR", "receipt": order["id"],
                    "notes": {"order_id": order["id"]}}
    rzp_order, payment_id = params["order_id"], "pay_test_fake_001"
    good = razorpay_payment_signature(rzp_order, payment_id)
    for bad in ({"razorpay_order_id": rzp_order, "razorpay_payment_id": payment_id,
                 "razorpay_signature": "f" * 64},
                {"razorpay_order_id": "order_other", "razorpay_payment_id": payment_id,
                 "razorpay_signature": good},
                {"razorpay_order_id": rzp_order, "razorpay_payment_id": "pay_other",
                 "razorpay_signature": good},
                {}):
        r = await client.post(f"/api/v1/topups/{order['id']}/verify", json=bad,
                              headers=auth(user_token("r")))
        assert r.status_code == 400 and r.json()["code"] == "invalid_signature", bad
    ok = await client.post(f"/api/v1/topups/{order['id']}/verify", json={
        "razorpay_order_id": rzp_order, "razorpay_payment_id": payment_id,
        "razorpay_signature": good}, headers=auth(user_token("r")))
    assert ok.status_code == 200 and ok.json()["status"] == "succeeded"

    body = razorpay_event("payment.captured", {
        "id": payment_id, "entity": "payment", "amount": 49900, "currency": "INR",
        "status": "captured", "order_id": rzp_order, "notes": {"order_id": order["id"]}})
    r = await client.post("/webhooks/razorpay", content=body, headers={
        "X-Razorpay-Signature": razorpay_sign(body), "X-Razorpay-Event-Id": "evt_rzp_1"})
    assert r.status_code == 200
    await drain(app)
    assert (await inbox_rows(app))[0].status == "processed"
    assert await credits(settings, order["id"]) == 1
    assert (await balance(client, "r"))["balance"] == 500


async def test_razorpay_webhook_signatures(client: httpx.AsyncClient) -> None:
    body = razorpay_event("payment.authorized", {"id": "pay_x", "order_id": "order_none",
                                                 "amount": 1, "currency": "INR"})
    for hdrs, content, status in [
        ({"X-Razorpay-Signature": razorpay_sign(body)}, body, 200),
        ({"X-Razorpay-Signature": razorpay_sign(body)}, body[:-1] + b" }", 400),
        ({"X-Razorpay-Signature": razorpay_sign(body, "rzp_wrong_secret")}, body, 400),
        ({}, body, 400),
        ({"X-Razorpay-Signature": razorpay_sign(b"\xff\xfe", RZP_WHSEC)}, b"\xff\xfe", 400),
    ]:
        r = await client.post("/webhooks/razorpay", content=content, headers=hdrs)
        assert r.status_code == status, (hdrs, r.text)
    # Without X-Razorpay-Event-Id, the body's hash names the event: a redelivery is a dup.
    again = await client.post("/webhooks/razorpay", content=body,
                              headers={"X-Razorpay-Signature": razorpay_sign(body)})
    assert again.json()["duplicate"] is True


async def test_same_event_three_times_then_ten_at_once(
    client: httpx.AsyncClient, app: Any, settings: Settings
) -> None:
    order = await topup(client, "d")
    body = mock_event("payment.succeeded", order["id"], amount=799, event_id="evt_same_1")
    answers = [await client.post("/webhooks/mock", content=body, headers=mock_headers(body))
               for _ in range(3)]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    await drain(app)
    assert await credits(settings, order["id"]) == 1

    order2 = await topup(client, "d", package="small")
    body2 = mock_event("payment.succeeded", order2["id"], amount=99, event_id="evt_same_2")
    posts = await asyncio.gather(*[
        client.post("/webhooks/mock", content=body2, headers=mock_headers(body2))
        for _ in range(10)])
    assert all(p.status_code == 200 for p in posts)
    assert sum(not p.json()["duplicate"] for p in posts) == 1
    await asyncio.gather(*[drain(app) for _ in range(5)])
    assert await credits(settings, order2["id"]) == 1
    assert (await balance(client, "d"))["balance"] == 1300
    assert len(await inbox_rows(app)) == 2


async def test_verify_and_webhook_race(client: httpx.AsyncClient, app: Any,
                                       settings: Settings) -> None:
    from coinpurse.payments.providers.mock import payment_signature
    from tests.payments.conftest import MOCK_WHSEC

    for round_ in range(5):
        order = await topup(client, "race", package="small")
        payment_id = f"mockpay_race_{round_}"
        body = mock_event("payment.succeeded", order["id"], amount=99, payment_id=payment_id)
        proof = {"payment_id": payment_id,
                 "signature": payment_signature(MOCK_WHSEC, order["id"], payment_id)}

        async def webhook(body: bytes = body) -> None:
            r = await client.post("/webhooks/mock", content=body, headers=mock_headers(body))
            assert r.status_code == 200
            await drain(app)

        async def verify(order_id: str = order["id"], proof: dict[str, str] = proof) -> int:
            r = await client.post(f"/api/v1/topups/{order_id}/verify", json=proof,
                                  headers=auth(user_token("race")))
            return r.status_code

        results = await asyncio.gather(webhook(), *[verify() for _ in range(4)])
        assert results[1:] == [200] * 4
        await drain(app)
        assert await credits(settings, order["id"]) == 1
    assert (await balance(client, "race"))["balance"] == 500


async def test_refund_after_the_coins_were_spent(
    client: httpx.AsyncClient, app: Any, settings: Settings, make_key: MakeKey
) -> None:
    from tests.payments.conftest import set_tier

    key = await make_key("shop", "*")
    order = await topup(client, "sp")
    body = mock_event("payment.succeeded", order["id"], amount=799, payment_id="mockpay_sp")
    await client.post("/webhooks/mock", content=body, headers=mock_headers(body))
    await drain(app)
    assert (await balance(client, "sp"))["balance"] == 1200
    spend = await client.post("/internal/v1/wallet/debit", headers={
        "X-API-Key": key, "Idempotency-Key": "spend-1"}, json={
        "user_id": "sp", "currency": "coins", "amount": 1100, "description": "Sticker pack",
        "reference_id": "p1"})
    assert spend.status_code == 201, spend.text

    refund = mock_event("refund.succeeded", order["id"], amount=799, payment_id="mockpay_sp")
    for _ in range(2):  # redelivered: still one reversal
        await client.post("/webhooks/mock", content=refund, headers=mock_headers(refund))
    lost = mock_event("dispute.lost", order["id"], amount=799, payment_id="mockpay_sp")
    await client.post("/webhooks/mock", content=lost, headers=mock_headers(lost))
    await drain(app)
    reversed_ = (await client.get(f"/admin/v1/payment-orders/{order['id']}",
                                  headers=ADMIN)).json()
    assert reversed_["status"] == "refunded"
    assert reversed_["reversed_amount"] == 100 and reversed_["debt_amount"] == 1100
    assert await balance(client, "sp") == {"balance": 0, "held": 0, "available": 0,
                                          "bonus": 0}
    acct = await client.get("/internal/v1/accounts/provider:mock", headers={"X-API-Key": key})
    assert acct.json()["balances"]["coins"]["balance"] == -1000 + 100

    # The debt blocks withdrawals, even at a tier that allows them.
    await set_tier(settings, "sp", 1)
    w = await client.post("/api/v1/withdrawals", headers=headers("sp"), json={
        "currency": "diamonds", "amount": 10, "destination": {"iban": "X"}})
    assert w.status_code == 409 and w.json()["code"] == "debt_outstanding"

    # The next top-ups repay the debt first.
    nxt = await topup(client, "sp")
    body = mock_event("payment.succeeded", nxt["id"], amount=799)
    await client.post("/webhooks/mock", content=body, headers=mock_headers(body))
    await drain(app)
    assert (await balance(client, "sp"))["balance"] == 100  # 1200 - 1100 repaid
    tx_id = (await order_of(client, "sp", nxt["id"]))["transaction_id"]
    tx = await client.get(f"/internal/v1/transactions/{tx_id}", headers={"X-API-Key": key})
    assert tx.json()["metadata"]["debt_repaid"] == 1100
    acct = await client.get("/internal/v1/accounts/provider:mock", headers={"X-API-Key": key})
    assert acct.json()["balances"]["coins"]["balance"] == -1000  # one paid order out
    promo = await client.get("/internal/v1/accounts/service:promotions",
                             headers={"X-API-Key": key})
    assert promo.json()["balances"]["coins"]["balance"] == -200
    w = await client.post("/api/v1/withdrawals", headers=headers("sp"), json={
        "currency": "diamonds", "amount": 10, "destination": {"iban": "X"}})
    assert w.json()["code"] == "insufficient_funds"  # no longer debt_outstanding
    assert_invariants(await ledger_state_async(settings.database_url))


async def test_events_out_of_order_and_disputes(client: httpx.AsyncClient, app: Any,
                                               settings: Settings) -> None:
    order = await topup(client, "o", package="small")
    refund = mock_event("refund.succeeded", order["id"], amount=99)
    await client.post("/webhooks/mock", content=refund, headers=mock_headers(refund))
    await drain(app)
    (row,) = await inbox_rows(app)
    assert row.status == "received" and row.attempts == 1 and "not been credited" in \
        row.last_error
    paid = mock_event("payment.succeeded", order["id"], amount=99)
    await client.post("/webhooks/mock", content=paid, headers=mock_headers(paid))
    await drain(app)  # the refund is not due yet; the payment is
    assert (await order_of(client, "o", order["id"]))["status"] == "succeeded"
    await drain(app, at=time.time() + 5)  # after the backoff
    assert (await order_of(client, "o", order["id"]))["status"] == "refunded"
    assert (await balance(client, "o"))["balance"] == 0

    other = await topup(client, "o", package="small")
    for kind in ("payment.succeeded", "dispute.created"):
        b = mock_event(kind, other["id"], amount=99)
        await client.post("/webhooks/mock", content=b, headers=mock_headers(b))
        await drain(app)
    assert (await order_of(client, "o", other["id"]))["status"] == "disputed"
    won = mock_event("dispute.won", other["id"], amount=99)
    await client.post("/webhooks/mock", content=won, headers=mock_headers(won))
    await drain(app)
    assert (await order_of(client, "o", other["id"]))["status"] == "succeeded"
    assert (await balance(client, "o"))["balance"] == 100

    wrong = await topup(client, "o", package="small")
    b = mock_event("payment.succeeded", wrong["id"], amount=1)  # not the order's price
    await client.post("/webhooks/mock", content=b, headers=mock_headers(b))
    await drain(app)
    assert (await order_of(client, "o", wrong["id"]))["status"] == "created"
    last = (await inbox_rows(app))[-1]
    assert last.status == "failed" and "costs 99 usd" in last.last_error
    assert_invariants(await ledger_state_async(settings.database_url))


async def test_partial_refund_waits_for_an_operator(client: httpx.AsyncClient, app: Any,
                                                   fakes: FakeProviders) -> None:
    order = await topup(client, "pr", provider="stripe", package="small")
    session = fakes.state.pay_session(order["client_params"]["session_id"])
    for etype, obj in [
        ("checkout.session.completed", session),
        ("charge.refunded", {"id": "ch_1", "object": "charge", "amount": 99,
                             "amount_refunded": 50, "refunded": False, "currency": "usd",
                             "payment_intent": session["payment_intent"]}),
    ]:
        body = stripe_event(etype, obj)
        await client.post("/webhooks/stripe", content=body,
                          headers={"Stripe-Signature": stripe_sign(body, STRIPE_WHSEC_NEW)})
    await drain(app)
    rows = await inbox_rows(app)
    assert [r.status for r in rows] == ["processed", "failed"]
    assert "partial refund" in rows[1].last_error
    assert (await balance(client, "pr"))["balance"] == 100

    events = await client.get("/admin/v1/webhook-events?status=failed", headers=AUDITOR)
    assert [e["id"] for e in events.json()["data"]] == [rows[1].id]
    one = await client.get(f"/admin/v1/webhook-events/{rows[1].id}", headers=AUDITOR)
    assert one.json()["body"]["type"] == "charge.refunded"
    denied = await client.post(f"/admin/v1/webhook-events/{rows[1].id}/retry", headers=AUDITOR)
    assert denied.status_code == 403
    retried = await client.post(f"/admin/v1/webhook-events/{rows[1].id}/retry", headers=ADMIN)
    assert retried.status_code == 200 and retried.json()["status"] == "received"
    assert (await client.get("/admin/v1/payment-orders?provider=stripe&status=succeeded",
                             headers=ADMIN)).json()["data"][0]["id"] == order["id"]
    assert (await client.get("/admin/v1/payment-orders",
                             headers=auth(user_token("pr")))).status_code == 403


async def test_provider_outage_then_retry_with_the_same_key(
    client: httpx.AsyncClient, fakes: FakeProviders
) -> None:
    for provider in ("stripe", "razorpay"):
        fakes.state.fail_next = 1
        r = await client.post("/api/v1/topups", json={"provider": provider,
                                                      "package_id": "small"},
                              headers=headers("po", f"k-{provider}"))
        assert r.status_code == 503 and r.json()["code"] == "provider_unavailable", r.text
        again = await client.post("/api/v1/topups", json={"provider": provider,
                                                          "package_id": "small"},
                                  headers=headers("po", f"k-{provider}"))
        assert again.status_code == 201, again.text
        assert again.json()["client_params"]


async def test_provider_failures_answer_in_our_words(
    client: httpx.AsyncClient, fakes: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    """What an SDK or a provider says never reaches the user: the answer is Coinpurse's own
    words, and the raw cause goes to the log."""
    caplog.set_level(logging.WARNING, logger="coinpurse.payments")
    for provider, raw in (("stripe", "fake refusal"), ("razorpay", "fake outage")):
        fakes.state.fail_next = 1
        r = await client.post("/api/v1/topups", json={"provider": provider,
                                                      "package_id": "small"},
                              headers=headers("pw"))
        assert r.status_code == 503 and r.json()["code"] == "provider_unavailable", r.text
        assert raw not in r.text and provider + ":" not in r.text
        assert r.json()["detail"] == (f"{provider} could not be reached to open the "
                                      "checkout; retry with the same idempotency key")
        assert raw in caplog.text
    caplog.clear()
    order = await topup(client, "pw", provider="stripe", package="small")
    fakes.state.sessions.clear()  # Stripe now answers 404 "No such checkout.session"
    r = await client.post(f"/api/v1/topups/{order['id']}/verify",
                          headers=auth(user_token("pw")))
    assert r.status_code == 503 and r.json()["code"] == "provider_unavailable", r.text
    assert "No such" not in r.text and "No such checkout.session" in caplog.text
    # A forged mock webhook: checked with the Stripe SDK, refused in our words.
    body = mock_event("payment.succeeded", order["id"], amount=99)
    r = await client.post("/webhooks/mock", content=body, headers={
        "coinpurse-mock-signature": "t=1,v1=" + "0" * 64})
    assert r.status_code == 400 and r.json()["code"] == "invalid_signature"
    assert "signatures found" not in r.text.lower() and "timestamp" not in r.text.lower()


async def test_topup_limits_at_their_edges(client: httpx.AsyncClient, settings: Settings,
                                          make_key: MakeKey) -> None:
    from tests.payments.conftest import set_tier

    key = await make_key("games", "*")
    # Tier 0, coins: topup_max 1200, topup_daily 2400, max_balance 3000.
    over = await client.post("/api/v1/topups", json={"amount": 1210, "currency": "coins"},
                             headers=headers("lim"))
    assert over.status_code == 422
    problem = over.json()
    assert problem["code"] == "limit_exceeded" and problem["limit"] == "topup_max"
    assert problem["limit_value"] == 1200 and problem["tier"] == 0
    await topup(client, "lim", package="", amount=1200, currency="coins")  # at the edge
    await topup(client, "lim", package="big")  # 1200 more: the daily total is 2400
    daily = await client.post("/api/v1/topups", json={"amount": 10, "currency": "coins"},
                              headers=headers("lim"))
    assert daily.json()["limit"] == "topup_daily" and daily.json()["used"] == 2400

    # max_balance counts the balance and the open orders (another user, same tier).
    r = await client.post("/internal/v1/wallet/credit", headers={
        "X-API-Key": key, "Idempotency-Key": "gift-mb"}, json={
        "user_id": "mb", "currency": "coins", "amount": 1800, "description": "Prize",
        "reference_id": "prize"})
    assert r.status_code == 201
    await topup(client, "mb", package="", amount=1200, currency="coins")  # 3000: the edge
    full = await client.post("/api/v1/topups", json={"amount": 10, "currency": "coins"},
                             headers=headers("mb"))
    assert full.status_code == 422 and full.json()["limit"] == "max_balance"
    assert full.json()["used"] == 3000
    await set_tier(settings, "mb", 1)  # tier 1: no balance limit, topup_max 20000
    assert (await client.post("/api/v1/topups", json={"amount": 10, "currency": "coins"},
                              headers=headers("mb"))).status_code == 201


async def test_kyc_required_when_the_tier_allows_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    from tests.payments.conftest import set_tier

    await set_tier(settings, "k0", 0)
    r = await client.post("/api/v1/withdrawals", headers=headers("k0"), json={
        "currency": "diamonds", "amount": 10, "destination": {"iban": "X"}})
    assert r.status_code == 403 and r.json()["code"] == "kyc_required"
    assert r.json()["required_tier"] == 1


async def test_the_background_worker_applies_events(settings: Settings) -> None:
    from asgi_lifespan import LifespanManager

    from coinpurse.app import create_app

    application = create_app(settings.model_copy(update={"inbox_poll_s": 0.05}))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            order = await topup(c, "bg", package="small")
            assert (await c.post(f"/mock-checkout/{order['id']}/pay")).status_code == 303
            for _ in range(100):
                if (await order_of(c, "bg", order["id"]))["status"] == "succeeded":
                    break
                await asyncio.sleep(0.05)
            assert (await order_of(c, "bg", order["id"]))["status"] == "succeeded"
            assert (await balance(c, "bg"))["balance"] == 100


def test_migration_matches_the_tables(settings: Settings) -> None:
    """Migration 0004 creates exactly the tables declared in coinpurse.tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine as sync_engine

    from coinpurse.core.tables import metadata

    url = settings.database_url.replace("postgresql://", "postgresql+psycopg://")
    if url.startswith("postgresql"):
        return  # no sync PostgreSQL driver here; SQLite checks the same declarations
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    mine = {"payment_orders", "webhook_inbox", "user_debts", "withdrawals", "kyc_profiles",
            "kyc_submissions"}
    relevant = [d for d in diff if any(name in repr(d) for name in mine)]
    assert relevant == []


async def test_no_second_credit_after_the_claims_are_purged(
    client: httpx.AsyncClient, app: Any, settings: Settings, monkeypatch: Any
) -> None:
    """Claims expire; the order row, re-read under the batch's locks, still says credited."""
    from sqlalchemy import delete

    from coinpurse.ledger.tables import idempotency_keys
    from coinpurse.payments import service as svc
    from coinpurse.payments.credits import credit, reverse
    from tests.payments.conftest import payments

    order = await topup(client, "pg", package="small")
    p = payments(app)
    stale = await svc.read_order(p.db, order["id"])
    await credit(p, order["id"], payment_id="mockpay_1")
    async with p.db.begin() as conn:
        await conn.execute(delete(idempotency_keys))
    real = svc.read_order
    calls = 0

    async def stale_first(db: Any, order_id: str) -> Any:
        nonlocal calls
        calls += 1
        return stale if calls == 1 else await real(db, order_id)

    monkeypatch.setattr(svc, "read_order", stale_first)
    done = await credit(p, order["id"], payment_id="mockpay_1")
    assert done.status == "succeeded"
    monkeypatch.setattr(svc, "read_order", real)
    stale = await svc.read_order(p.db, order["id"])
    await reverse(p, order["id"], "refunded")
    async with p.db.begin() as conn:
        await conn.execute(delete(idempotency_keys))
    calls = 0
    monkeypatch.setattr(svc, "read_order", stale_first)
    again = await reverse(p, order["id"], "refunded")
    assert again.status == "refunded" and again.debt_amount == 0
    assert await credits(settings, order["id"]) == 1
    assert (await balance(client, "pg"))["balance"] == 0
    async with p.db.connect() as conn:
        from coinpurse.payments.tables import user_debts

        assert (await conn.execute(user_debts.select())).all() == []
    assert_invariants(await ledger_state_async(settings.database_url))


def test_mock_flow_over_a_real_server(serve: Any) -> None:
    """``coinpurse serve``: order, checkout page, Pay, the signed webhook, the inbox worker
    inside the server, the credit; all over real HTTP."""
    server = serve(COINPURSE_TOPUP_PROVIDERS="mock", COINPURSE_INBOX_POLL_S="0.1")
    user = auth(user_token("real"))
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        r = c.post("/api/v1/topups", json={"package_id": "medium"},
                   headers={**user, "Idempotency-Key": "real-1"})
        assert r.status_code == 201, r.text
        order = r.json()
        assert c.get(urlsplit(order["checkout_url"]).path).status_code == 200
        paid = c.post(f"/mock-checkout/{order['id']}/pay")
        assert paid.status_code == 303
        for _ in range(100):
            status = c.get(f"/api/v1/topups/{order['id']}", headers=user).json()["status"]
            if status == "succeeded":
                break
            time.sleep(0.05)
        assert status == "succeeded"
        wallet = c.get("/api/v1/wallet/balance", headers=user).json()["wallets"]["points"]
        assert wallet["balance"] == 1200


async def test_signed_but_malformed_events_never_credit(client: httpx.AsyncClient, app: Any,
                                                       settings: Settings) -> None:
    import json

    order = await topup(client, "mal", package="small")
    bodies = [
        b"not json",
        b"[]",
        json.dumps({"id": "e1", "type": "payment.succeeded", "data": []}).encode(),
        json.dumps({"id": "e2", "type": "payment.succeeded", "data": {
            "order_id": order["id"], "payment_id": 7, "amount": "99",
            "currency": "usd"}}).encode(),
        json.dumps({"id": "e3", "type": "payment.succeeded", "data": {
            "order_id": order["id"], "payment_id": "p", "amount": True,
            "currency": 5}}).encode(),
        json.dumps({"id": "e4", "type": ["x"], "data": {"order_id": order["id"]}}).encode(),
    ]
    for body in bodies:
        r = await client.post("/webhooks/mock", content=body, headers=mock_headers(body))
        assert r.status_code == 200, r.text
    await drain(app)
    assert (await order_of(client, "mal", order["id"]))["status"] == "created"
    assert await credits(settings, order["id"]) == 0
    assert {r.status for r in await inbox_rows(app)} <= {"failed", "ignored"}
    stripe_bad = b'{"id": "evt_x", "type": "checkout.session.completed", "data": 5}'
    r = await client.post("/webhooks/stripe", content=stripe_bad, headers={
        "Stripe-Signature": stripe_sign(stripe_bad, STRIPE_WHSEC_NEW)})
    assert r.status_code == 200
    rzp_bad = b'{"event": "payment.captured", "payload": {"payment": []}}'
    r = await client.post("/webhooks/razorpay", content=rzp_bad,
                          headers={"X-Razorpay-Signature": razorpay_sign(rzp_bad)})
    assert r.status_code == 200
    await drain(app)
    assert {r.status for r in await inbox_rows(app)} <= {"failed", "ignored"}
