"""Webhooks to services: signed deliveries to a receiver on 127.0.0.1, retries until it
recovers, each event once; rotation, redelivery, disabling; the SSRF guard."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest
from coinpurse_client.webhooks import verify_signature
from prometheus_client import REGISTRY

from coinpurse.events import signature, ssrf
from tests.conftest import MakeKey, auth, user_token
from tests.events.conftest import ADMIN, add_endpoint, credit, eventually
from tests.events.receiver import Receiver


async def test_a_receiver_checks_the_signature_of_each_delivery(
        client: httpx.AsyncClient, make_key: MakeKey, receiver: Receiver) -> None:
    key = await make_key()
    endpoint = await add_endpoint(client, receiver.url, ["transaction.*"])
    secret = endpoint["secret"]
    assert secret.startswith("whsec_") and "secret" not in (await client.get(
        f"/admin/v1/webhook-endpoints/{endpoint['id']}", headers=ADMIN)).json()
    tx = await credit(client, key, "wh1", 40)
    [got] = await eventually(receiver.delivered, what="a delivery")
    assert got.event["type"] == "transaction.posted" and got.event["data"]["id"] == tx["id"]
    assert got.headers["coinpurse-event-id"] == got.event["id"]
    assert got.headers["content-type"] == "application/json"
    header = got.headers["coinpurse-signature"]
    assert signature.verify(got.body, header, secret) > 0
    assert verify_signature(got.body, header, secret) > 0  # the Python client agrees
    with pytest.raises(signature.SignatureError):
        signature.verify(got.body, header, "whsec_someone-else")
    with pytest.raises(signature.SignatureError):
        signature.verify(got.body + b" ", header, secret)
    with pytest.raises(signature.SignatureError):  # replayed an hour later
        signature.verify(got.body, header, secret, now=signature.verify(
            got.body, header, secret) + 3600)
    r = await client.get(f"/admin/v1/webhook-endpoints/{endpoint['id']}/deliveries",
                         headers=ADMIN)
    [delivery] = r.json()["data"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert delivery["last_status_code"] == 204 and delivery["event_id"] == got.event["id"]


async def test_a_failing_receiver_gets_every_event_once_after_retries(
        client: httpx.AsyncClient, make_key: MakeKey) -> None:
    receiver = Receiver(answer=lambda n: 500 if n < 6 else 200).start()
    before = {outcome: _sent(outcome) for outcome in ("ok", "failed")}
    try:
        key = await make_key()
        endpoint = await add_endpoint(client, receiver.url)
        ids = [(await credit(client, key, f"wh2-{n}", n + 1))["id"] for n in range(4)]

        def all_delivered() -> bool:
            return len({r.event["data"]["id"] for r in receiver.delivered()}) == 4

        async def recorded() -> list[dict[str, Any]]:
            r = await client.get(f"/admin/v1/webhook-endpoints/{endpoint['id']}/deliveries",
                                 headers=ADMIN, params={"status": "delivered"})
            found: list[dict[str, Any]] = r.json()["data"]
            return found if len(found) == 4 else []

        await eventually(all_delivered, what="every event delivered")
        found = await eventually(recorded, what="the deliveries recorded")
        ok = [r.event["data"]["id"] for r in receiver.delivered()]
        assert sorted(ok) == sorted(ids)  # each exactly once with a 2xx
        assert len(receiver.received) > len(ok)  # the first answers were 500
        assert sum(d["attempts"] for d in found) == len(receiver.received)
        # /metrics counts every attempt by outcome (coinpurse_deliveries_total, kind webhook)
        assert _sent("ok") - before["ok"] == 4
        assert _sent("failed") - before["failed"] == len(receiver.received) - 4
    finally:
        receiver.stop()


def _sent(outcome: str) -> float:
    return REGISTRY.get_sample_value(
        "coinpurse_deliveries_total", {"kind": "webhook", "outcome": outcome}) or 0.0


async def test_a_delivery_that_keeps_failing_is_marked_failed_then_redelivered(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Any) -> None:
    fail = True
    receiver = Receiver(answer=lambda _n: 503 if fail else 200).start()
    try:
        settings.webhook_retry_for_s = 1  # (below the setting's floor: tests only)
        key = await make_key()
        endpoint = await add_endpoint(client, receiver.url)
        await credit(client, key, "wh3", 5)
        base = f"/admin/v1/webhook-endpoints/{endpoint['id']}/deliveries"

        async def the_delivery(status: str) -> dict[str, Any] | None:
            found = (await client.get(base, headers=ADMIN)).json()["data"]
            return found[0] if found and found[0]["status"] == status else None

        pending = await eventually(lambda: the_delivery("pending"), what="a delivery")
        assert pending["next_attempt_at"] is not None
        failed = await eventually(lambda: the_delivery("failed"), what="giving up")
        assert failed["attempts"] >= 2 and failed["last_status_code"] == 503
        assert failed["last_error"] == "answered 503" and failed["next_attempt_at"] is None
        fail = False
        settings.webhook_retry_for_s = 60
        r = await client.post(f"{base}/{failed['id']}/redeliver", headers=ADMIN)
        assert r.status_code == 200 and r.json()["status"] == "pending"

        async def delivered() -> bool:
            [d] = (await client.get(base, headers=ADMIN)).json()["data"]
            return bool(d["status"] == "delivered")

        await eventually(delivered, what="the redelivery")
        assert len(receiver.delivered()) == 1
        missing = await client.post(f"{base}/0190a0b0-0000-7000-8000-000000000001/redeliver",
                                    headers=ADMIN)
        assert missing.status_code == 404
    finally:
        receiver.stop()


async def test_rotation_signs_with_both_secrets_during_the_grace_period(
        client: httpx.AsyncClient, make_key: MakeKey, receiver: Receiver) -> None:
    key = await make_key()
    endpoint = await add_endpoint(client, receiver.url)
    old = endpoint["secret"]
    r = await client.post(f"/admin/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
                          headers=ADMIN, json={"grace_s": 3600})
    assert r.status_code == 200 and r.json()["secret"] != old
    new = r.json()["secret"]
    assert r.json()["previous_secret_expires_at"] is not None
    await credit(client, key, "wh4", 1)
    [got] = await eventually(receiver.delivered)
    header = got.headers["coinpurse-signature"]
    assert header.count("v1=") == 2
    assert signature.verify(got.body, header, new) and signature.verify(got.body, header, old)
    r = await client.post(f"/admin/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
                          headers=ADMIN, json={"grace_s": 0})
    newest = r.json()["secret"]
    assert r.json()["previous_secret_expires_at"] is None
    await credit(client, key, "wh4", 1)
    await eventually(lambda: len(receiver.delivered()) == 2)
    header = receiver.delivered()[1].headers["coinpurse-signature"]
    assert header.count("v1=") == 1
    signature.verify(receiver.delivered()[1].body, header, newest)
    with pytest.raises(signature.SignatureError):
        signature.verify(receiver.delivered()[1].body, header, new)


async def test_patterns_and_disabling_decide_what_is_delivered(
        client: httpx.AsyncClient, make_key: MakeKey, receiver: Receiver) -> None:
    key = await make_key()
    holds_only = await add_endpoint(client, receiver.url, ["hold.*"])
    await credit(client, key, "wh5", 50)
    r = await client.post("/internal/v1/holds", headers={
        "X-API-Key": key, "Idempotency-Key": "h1"}, json={
        "user_id": "wh5", "currency": "points", "amount": 5, "description": "d",
        "reference_id": "r"})
    assert r.status_code == 201
    [got] = await eventually(receiver.delivered)
    assert got.event["type"] == "hold.placed"
    r = await client.patch(f"/admin/v1/webhook-endpoints/{holds_only['id']}", headers=ADMIN,
                           json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    await client.post("/internal/v1/holds", headers={
        "X-API-Key": key, "Idempotency-Key": "h2"}, json={
        "user_id": "wh5", "currency": "points", "amount": 5, "description": "d",
        "reference_id": "r"})
    everything = await add_endpoint(client, receiver.url, ["*"])
    await credit(client, key, "wh5", 1)
    await eventually(lambda: len(receiver.delivered()) == 2)
    assert receiver.delivered()[1].event["type"] == "transaction.posted"
    listed = (await client.get("/admin/v1/webhook-endpoints", headers=ADMIN)).json()
    assert {e["id"] for e in listed["data"]} == {holds_only["id"], everything["id"]}
    assert (await client.delete(f"/admin/v1/webhook-endpoints/{holds_only['id']}",
                                headers=ADMIN)).status_code == 204
    assert (await client.get(f"/admin/v1/webhook-endpoints/{holds_only['id']}",
                             headers=ADMIN)).status_code == 404


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:8000/hook", "address_not_allowed"),
    ("http://10.0.0.1/hook", "address_not_allowed"),
    ("http://169.254.169.254/latest/meta-data/", "address_not_allowed"),
    ("http://[::1]/hook", "address_not_allowed"),
    ("http://localhost:9000/hook", "address_not_allowed"),  # a name resolving to loopback
    ("http://[::ffff:127.0.0.1]/hook", "address_not_allowed"),
    ("http://0.0.0.0/hook", "address_not_allowed"),
    ("ftp://example.com/hook", "scheme_not_allowed"),
    ("http://user:pw@example.com/hook", "invalid_url"),
    ("not a url", "invalid_url"),
])
async def test_private_urls_are_refused_without_the_allow_flag(
        client: httpx.AsyncClient, settings: Any, url: str, reason: str) -> None:
    settings.webhook_allow_private = False
    r = await client.post("/admin/v1/webhook-endpoints", headers=ADMIN, json={
        "url": url, "events": ["*"]})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "webhook_url_refused" and r.json()["reason"] == reason
    assert (await client.get("/admin/v1/webhook-endpoints", headers=ADMIN)).json()[
        "data"] == []


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "224.0.0.1", "0.0.0.0", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a00:1"])
def test_blocked_addresses(address: str) -> None:
    assert ssrf.blocked(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1"])
def test_public_addresses_pass(address: str) -> None:
    assert not ssrf.blocked(ipaddress.ip_address(address))


async def test_delivery_time_guard_refuses_a_private_address(settings: Any,
                                                             receiver: Receiver) -> None:
    """An endpoint allowed when it was made (the flag was on) but not any more: the sender
    resolves and checks again, and connects to nothing."""
    from datetime import UTC, datetime

    from coinpurse.events import webhooks
    from coinpurse.events.repository import StoredEvent

    settings.webhook_allow_private = False
    sender = webhooks.Sender(None, settings)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    endpoint = webhooks.Endpoint("e", receiver.url.replace("127.0.0.1", "localhost"), ("*",),
                                 "", True, "whsec_x", None, None, now, now)
    async with sender.pool() as pool:
        result = await sender.post(pool, endpoint, StoredEvent(1, "t.x", now, {}))
    assert not result.ok and result.error is not None and "refused" in result.error
    assert receiver.received == []


@pytest.mark.parametrize("body", [
    {"url": "http://127.0.0.1/x", "events": []},
    {"url": "http://127.0.0.1/x", "events": ["topup.*.x"]},
    {"url": "http://127.0.0.1/x", "events": ["a.b"] * 33},
    {"url": "", "events": ["*"]},
    {"url": "http://127.0.0.1/x"},
    {"url": "http://127.0.0.1/x", "events": ["*"], "secret": "mine"},
    {"url": "http://127.0.0.1/x", "events": ["*"], "description": "x" * 256},
])
async def test_bad_endpoint_bodies(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await client.post("/admin/v1/webhook-endpoints", headers=ADMIN, json=body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


async def test_only_admins_manage_endpoints(client: httpx.AsyncClient,
                                            receiver: Receiver) -> None:
    body = {"url": receiver.url, "events": ["*"]}
    user = auth(user_token("u1"))
    auditor = auth(user_token("a1", role="auditor"))
    assert (await client.post("/admin/v1/webhook-endpoints", json=body)).status_code == 401
    assert (await client.post("/admin/v1/webhook-endpoints", headers=user,
                              json=body)).status_code == 403
    assert (await client.post("/admin/v1/webhook-endpoints", headers=auditor,
                              json=body)).status_code == 403
    assert (await client.get("/admin/v1/webhook-endpoints", headers=auditor)).status_code == 200
    made = await add_endpoint(client, receiver.url)
    for method, path, payload in [
        ("PATCH", "", {"enabled": False}), ("DELETE", "", None),
        ("POST", "/rotate-secret", None)]:
        r = await client.request(method, f"/admin/v1/webhook-endpoints/{made['id']}{path}",
                                 headers=auditor, json=payload)
        assert r.status_code == 403, (method, path)
    r = await client.patch(f"/admin/v1/webhook-endpoints/{made['id']}", headers=ADMIN,
                           json={"enabled": None})
    assert r.status_code == 422
    r = await client.patch("/admin/v1/webhook-endpoints/nope", headers=ADMIN,
                           json={"enabled": True})
    assert r.status_code == 404


async def test_finished_deliveries_go_with_the_retention(
        client: httpx.AsyncClient, app: Any, make_key: MakeKey, receiver: Receiver) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select, update

    from coinpurse.events.service import purge
    from coinpurse.events.tables import webhook_deliveries as d

    key = await make_key()
    await add_endpoint(client, receiver.url)
    await credit(client, key, "wh6", 1)
    await eventually(receiver.delivered)
    db = app.state.coinpurse.db

    async def statuses() -> list[str]:
        async with db.connect() as conn:
            return list((await conn.execute(select(d.c.status))).scalars())

    await eventually(lambda: _delivered(db), what="the delivery recorded")
    async with db.begin() as conn:
        await conn.execute(update(d).values(created_at=datetime.now(UTC) - timedelta(days=40)))
    assert await purge(db, retention_days=30) >= 1
    assert await statuses() == []


async def _delivered(db: Any) -> bool:
    from sqlalchemy import select

    from coinpurse.events.tables import webhook_deliveries as d

    async with db.connect() as conn:
        return list((await conn.execute(select(d.c.status))).scalars()) == ["delivered"]
