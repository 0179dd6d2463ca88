"""Provider statements against the paid orders, through the real SDKs talking to the local
fake of Stripe's and Razorpay's APIs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from coinpurse.config import Settings
from coinpurse.reconcile.service import Period
from tests.fakes.providers import FakeProviders
from tests.payments.conftest import (
    STRIPE_WHSEC_NEW,
    drain,
    headers,
    razorpay_payment_signature,
    stripe_event,
    stripe_sign,
)
from tests.reconcile.conftest import found, reconciler


async def topup(client: httpx.AsyncClient, user: str, provider: str) -> dict[str, Any]:
    r = await client.post("/api/v1/topups", json={"package_id": "small", "provider": provider},
                          headers=headers(user))
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


async def provider_run(settings: Settings, provider: str) -> Any:
    today = datetime.now(UTC).date()
    async with reconciler(settings) as rec:
        started = await rec.begin("provider", mode="period", trigger="cli", provider=provider,
                                  period=Period.of_days(today, today))
        try:
            await rec.execute(started)
        except Exception as exc:  # the run stores it; the test reads the run
            assert getattr(exc, "code", None) == "provider_unavailable"
        return await rec.get(started.id)


async def stripe_paid(client: httpx.AsyncClient, app: Any, fakes: FakeProviders,
                      order: dict[str, Any]) -> str:
    """Paid at Stripe and confirmed by its webhook."""
    (sid,) = [k for k, v in fakes.state.sessions.items()
              if v["client_reference_id"] == order["id"]]
    session = fakes.state.pay_session(sid)
    body = stripe_event("checkout.session.completed", session)
    r = await client.post("/webhooks/stripe", content=body, headers={
        "Stripe-Signature": stripe_sign(body, STRIPE_WHSEC_NEW),
        "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    await drain(app)
    return sid


async def test_stripe_statement(client: httpx.AsyncClient, app: Any, fakes: FakeProviders,
                                settings: Settings) -> None:
    credited = await topup(client, "sam", "stripe")
    await stripe_paid(client, app, fakes, credited)
    clean = await provider_run(settings, "stripe")
    assert clean.run.status == "passed", clean.discrepancies
    assert clean.run.counts == {"provider_payments": 1, "orders": 1}
    assert any(r[1] == "/v1/checkout/sessions" for r in fakes.state.requests)

    # paid at Stripe, never credited here (the webhook lost)
    lost = await topup(client, "sam", "stripe")
    (lost_sid,) = [k for k, v in fakes.state.sessions.items()
                   if v["client_reference_id"] == lost["id"]]
    lost_payment = fakes.state.pay_session(lost_sid)["payment_intent"]
    # credited here, but Stripe lists no payment (refunded there and here it is not known)
    other = await topup(client, "sam", "stripe")
    other_sid = await stripe_paid(client, app, fakes, other)
    fakes.state.sessions[other_sid].update(status="open", payment_status="unpaid")
    # credited here for another amount than Stripe took
    odd = await topup(client, "sam", "stripe")
    odd_sid = await stripe_paid(client, app, fakes, odd)
    fakes.state.sessions[odd_sid]["amount_total"] = 1
    detail = await provider_run(settings, "stripe")
    assert detail.run.status == "failed"
    (missing,) = found(detail, "provider_payment_not_credited")
    assert missing.subject == lost_payment and lost_sid in missing.detail
    (extra,) = found(detail, "order_not_paid_at_provider")
    assert extra.subject == other["id"]
    (amount,) = found(detail, "provider_amount_mismatch")
    assert amount.subject == odd["id"] and (amount.expected, amount.actual) == (99, 1)


async def test_stripe_statements_are_read_page_by_page(
        client: httpx.AsyncClient, app: Any, fakes: FakeProviders, settings: Settings,
        monkeypatch: Any) -> None:
    from coinpurse.reconcile import statements

    monkeypatch.setattr(statements, "PAGE", 2)
    for _ in range(5):
        await stripe_paid(client, app, fakes, await topup(client, "pat", "stripe"))
    detail = await provider_run(settings, "stripe")
    assert detail.run.status == "passed" and detail.run.counts["provider_payments"] == 5
    lists = [r for r in fakes.state.requests
             if r[1] == "/v1/checkout/sessions" and "created[gte]" in r[2]]
    assert len(lists) == 3 and "starting_after" in lists[-1][2]


async def test_razorpay_statement(client: httpx.AsyncClient, app: Any, fakes: FakeProviders,
                                  settings: Settings) -> None:
    def captured(order: dict[str, Any]) -> dict[str, Any]:
        return fakes.state.capture_order(order["client_params"]["order_id"])

    paid = await topup(client, "ravi", "razorpay")
    payment = captured(paid)
    r = await client.post(f"/api/v1/topups/{paid['id']}/verify", headers=headers("ravi"), json={
        "razorpay_order_id": payment["order_id"], "razorpay_payment_id": payment["id"],
        "razorpay_signature": razorpay_payment_signature(payment["order_id"], payment["id"])})
    assert r.status_code == 200, r.text
    assert (await provider_run(settings, "razorpay")).run.status == "passed"
    unseen = await topup(client, "ravi", "razorpay")
    lost = captured(unseen)
    detail = await provider_run(settings, "razorpay")
    (missing,) = found(detail, "provider_payment_not_credited")
    assert missing.subject == lost["id"] and f"order {unseen['id']} is " in missing.detail


async def test_an_unreachable_provider_ends_the_run_in_error(settings: Settings) -> None:
    away = Settings(**{**settings.model_dump(exclude_unset=True),
                       "stripe_api_base": "http://127.0.0.1:9"})
    detail = await provider_run(away, "stripe")
    assert detail.run.status == "error" and "stripe could not be reached" in (detail.run.error
                                                                              or "")
