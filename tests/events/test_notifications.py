"""Notifications made exactly once per (event, user) by their consumer, the feed's routes,
e-mail through a real SMTP server (aiosmtpd), and balance monitors."""

from __future__ import annotations

import asyncio
import uuid
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from coinpurse.config import Settings
from coinpurse.core.clock import utcnow
from coinpurse.events import consumer, notifications, repository, service
from tests.conftest import TEST_JWT_SECRET, MakeKey, auth, user_token
from tests.events.conftest import FAST, credit, eventually
from tests.pgserver import free_port


async def _emit(app: Any, type_: str, data: dict[str, Any]) -> None:
    async with app.state.coinpurse.db.begin() as conn:
        await service.emit(conn, type_, data)


WITHDRAWAL = {"withdrawal_id": "w1", "user_id": "n1", "currency": "points", "amount": 70,
              "status": "paid", "reason": None}


async def test_a_notifying_event_makes_one_notification(app: Any, client: httpx.AsyncClient,
                                                        make_key: MakeKey) -> None:
    me = auth(user_token("n1"))
    await _emit(app, "withdrawal.paid", WITHDRAWAL)
    await _emit(app, "withdrawal.requested", WITHDRAWAL)  # not in the default list
    await _emit(app, "kyc.rejected", {"user_id": "n1", "tier": 2, "reason": "blurry photo",
                                      "submission_id": "s1"})

    async def feed() -> dict[str, Any] | None:
        page: dict[str, Any] = (await client.get("/api/v1/notifications", headers=me)).json()
        return page if len(page["data"]) == 2 else None

    page = await eventually(feed, what="two notifications")
    assert page["unread_count"] == 2 and page["next_cursor"] is None
    rejected, paid = page["data"]  # newest first
    assert paid["kind"] == "withdrawal.paid" and paid["title"] == "Withdrawal paid"
    assert "70 points" in paid["body"] and paid["read_at"] is None
    assert rejected["kind"] == "kyc.rejected" and "blurry photo" in rejected["body"]
    # The consumer run again (another process, a retry) makes nothing more.
    state = app.state.coinpurse
    handle, types = notifications.consumer(state.settings, builtin_accounts=False)
    async with state.db.begin() as conn:
        await repository.advance(conn, notifications.CURSOR, 0, utcnow())
    await consumer.drain(state.db, notifications.CURSOR, handle, types=types)
    again = (await client.get("/api/v1/notifications", headers=me)).json()
    assert [n["id"] for n in again["data"]] == [rejected["id"], paid["id"]]
    # ... and each wrote one notification.created event, for the live stream.
    key = await make_key()
    created = (await client.get("/internal/v1/events", headers={"X-API-Key": key},
                                params={"types": "notification.created"})).json()["data"]
    assert sorted(e["data"]["id"] for e in created) == sorted([rejected["id"], paid["id"]])

    one = await client.post(f"/api/v1/notifications/{paid['id']}/read", headers=me)
    assert one.status_code == 200 and one.json()["read_at"] is not None
    assert (await client.get("/api/v1/notifications", headers=me)).json()["unread_count"] == 1
    unread = (await client.get("/api/v1/notifications", headers=me,
                               params={"unread": "true"})).json()
    assert [n["id"] for n in unread["data"]] == [rejected["id"]]
    other = auth(user_token("n2"))
    assert (await client.post(f"/api/v1/notifications/{rejected['id']}/read",
                              headers=other)).status_code == 404
    done = await client.post("/api/v1/notifications/read-all", headers=me)
    assert done.json() == {"marked_read": 1, "unread_count": 0}
    first = (await client.get("/api/v1/notifications", headers=me,
                              params={"limit": 1})).json()
    assert len(first["data"]) == 1 and first["next_cursor"]
    rest = (await client.get("/api/v1/notifications", headers=me,
                             params={"limit": 1, "cursor": first["next_cursor"]})).json()
    assert [n["id"] for n in rest["data"]] == [paid["id"]] and rest["next_cursor"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "cursor=nope", "unread=maybe"])
async def test_bad_feed_queries(client: httpx.AsyncClient, query: str) -> None:
    r = await client.get(f"/api/v1/notifications?{query}", headers=auth(user_token("n1")))
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert (await client.get("/api/v1/notifications")).status_code == 401


class Inbox:
    """aiosmtpd's handler: refuses the first ``refuse`` messages (451), keeps the rest."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.messages: list[Message] = []
        self.tries = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.tries += 1
        if self.tries <= self.refuse:
            return "451 4.3.0 try again later"
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


async def test_email_through_a_real_smtp_server(db_url: str, make_key: MakeKey) -> None:
    from asgi_lifespan import LifespanManager

    from coinpurse.app import create_app

    inbox = Inbox(refuse=1)
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        settings = Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                            currencies="points:0", auth="builtin",
                            smtp_url=f"smtp://127.0.0.1:{port}",
                            smtp_from="Coinpurse <wallet@example.com>",
                            email_backoff_base_s=0.1, rate_limit_login="off",
                            rate_limit_login_ip="off", **FAST)
        app = create_app(settings)
        async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            email = f"mail-{uuid.uuid4().hex[:8]}@example.com"
            password = "correct horse battery staple"
            assert (await client.post("/api/v1/auth/register", json={
                "email": email, "password": password})).status_code == 202
            login = await client.post("/api/v1/auth/login", json={"email": email,
                                                                  "password": password})
            token = login.json()["access_token"]
            user_id = (await client.get("/api/v1/me", headers=auth(token))).json()["id"]
            await _emit(app, "kyc.approved", {"user_id": user_id, "tier": 1,
                                              "reason": None, "submission_id": "s"})
            await _emit(app, "kyc.approved", {"user_id": "nobody-known", "tier": 1,
                                              "reason": None, "submission_id": "s2"})
            await eventually(lambda: inbox.messages, what="the e-mail")
            [mail] = inbox.messages
            assert mail["To"] == email and mail["Subject"] == "Verification approved"
            assert mail["From"] == "Coinpurse <wallet@example.com>"
            parts = {p.get_content_type(): p.get_payload(decode=True).decode()
                     for p in mail.walk() if not p.is_multipart()}
            assert "verified to tier 1" in parts["text/plain"]
            assert "<h1" in parts["text/html"] and "verified to tier 1" in parts["text/html"]
            assert inbox.tries == 2  # the first try was refused, then retried
            await asyncio.sleep(0.5)
            assert len(inbox.messages) == 1  # sent once, and nothing for unknown users
    finally:
        smtp.stop()


async def test_balance_monitors(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    h = {"X-API-Key": key}
    r = await client.post("/internal/v1/balance-monitors", headers=h, json={
        "address": "service:games", "currency": "points", "condition": "below",
        "amount": -100, "description": "games issued 100 points"})
    assert r.status_code == 201, r.text
    low = r.json()
    assert low["service"] == "games" and low["condition"] == "below"
    high = (await client.post("/internal/v1/balance-monitors", headers=h, json={
        "user_id": "m1", "currency": "points", "condition": "above", "amount": 100})).json()
    assert high["address"] == "user:m1"
    await credit(client, key, "m1", 60)   # games -60, m1 60: nothing
    second = await credit(client, key, "m1", 60)  # games -120 (below -100), m1 120 (above)
    await credit(client, key, "m1", 10)   # still in both conditions: nothing
    debit = await client.post("/internal/v1/wallet/debit", headers={
        **h, "Idempotency-Key": "back"}, json={"user_id": "m1", "currency": "points",
                                               "amount": 100, "description": "d",
                                               "reference_id": "r"})
    assert debit.status_code == 201  # games -30, m1 30: both leave their condition
    third = await credit(client, key, "m1", 75)  # games -105, m1 105: both cross again
    found = (await client.get("/internal/v1/events", headers=h, params={
        "types": "balance.threshold_crossed"})).json()["data"]
    assert [(e["data"]["monitor"]["id"], e["data"]["transaction_id"]) for e in found] == [
        (low["id"], second["id"]), (high["id"], second["id"]),
        (low["id"], third["id"]), (high["id"], third["id"])]
    crossed = found[0]["data"]
    assert crossed["compared"] == "balance" and crossed["address"] == "service:games"
    assert (crossed["balance_before"], crossed["balance_after"]) == (-60, -120)
    listed = (await client.get("/internal/v1/balance-monitors", headers=h)).json()
    assert [m["id"] for m in listed["data"]] == [high["id"], low["id"]]
    assert (await client.delete(f"/internal/v1/balance-monitors/{low['id']}",
                                headers=h)).status_code == 204
    assert (await client.delete(f"/internal/v1/balance-monitors/{low['id']}",
                                headers=h)).status_code == 404


@pytest.mark.parametrize("body", [
    {"address": "service:games", "user_id": "u", "currency": "points", "condition": "below",
     "amount": 1},
    {"currency": "points", "condition": "below", "amount": 1},
    {"address": "service:games", "currency": "nope", "condition": "below", "amount": 1},
    {"address": "service:games", "currency": "points", "condition": "under", "amount": 1},
    {"address": "service:games", "currency": "points", "condition": "below", "amount": 1.5},
    {"address": "service:games", "currency": "points", "condition": "below",
     "amount": 2**63},
    {"address": "NOT AN ADDRESS", "currency": "points", "condition": "below", "amount": 1},
])
async def test_bad_monitor_bodies(client: httpx.AsyncClient, make_key: MakeKey,
                                  body: dict[str, Any]) -> None:
    key = await make_key()
    r = await client.post("/internal/v1/balance-monitors", headers={"X-API-Key": key},
                          json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


async def test_monitors_need_their_scopes(client: httpx.AsyncClient,
                                          make_key: MakeKey) -> None:
    reader = await make_key(scopes="monitors:read")
    writer = await make_key(scopes="monitors:write")
    body = {"address": "world", "currency": "points", "condition": "above", "amount": 1}
    r = await client.post("/internal/v1/balance-monitors", headers={"X-API-Key": reader},
                          json=body)
    assert r.status_code == 403 and r.json()["required_scope"] == "monitors:write"
    assert (await client.post("/internal/v1/balance-monitors", headers={"X-API-Key": writer},
                              json=body)).status_code == 201
    for k in (reader, writer):
        assert (await client.get("/internal/v1/balance-monitors",
                                 headers={"X-API-Key": k})).status_code == 200
