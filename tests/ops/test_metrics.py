"""Prometheus metrics: /metrics behind its token, the request, ledger and refusal figures,
and the right totals over several server processes (multiprocess mode)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from coinpurse.config import Settings
from tests.conftest import TEST_JWT_SECRET, MakeKey, Server

TOKEN = "metrics-token-for-tests-only"
CREDIT = {"user_id": "u1", "currency": "points", "amount": 7, "description": "d",
          "reference_id": "r"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                    currencies="points:0,usdt:2,diamonds:0", metrics_token=TOKEN,
                    inbox_poll_s=0)  # the inbox worker must not apply the test event


async def scrape(client: httpx.AsyncClient) -> str:
    r = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return r.text


async def test_metrics_need_the_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 28})
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"


async def test_without_a_token_metrics_are_not_served(db_url: str) -> None:
    from asgi_lifespan import LifespanManager

    from coinpurse.app import create_app

    app = create_app(Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET))  # type: ignore[arg-type]
    async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        r = await c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"


async def test_requests_ledger_refusals_and_replays_are_counted(
        client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    before = await scrape(client)
    route = "/internal/v1/wallet/credit"
    h = {"X-API-Key": key}
    for i in range(3):
        r = await client.post(route, json=CREDIT, headers={**h, "Idempotency-Key": f"m{i}"})
        assert r.status_code == 201
    again = await client.post(route, json=CREDIT, headers={**h, "Idempotency-Key": "m0"})
    assert again.headers["idempotent-replayed"] == "true"
    refused = await client.post("/internal/v1/wallet/debit", headers={
        **h, "Idempotency-Key": "too-much"}, json={**CREDIT, "amount": 10**9})
    assert refused.json()["code"] == "insufficient_funds"
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("coinpurse_http_request_duration_seconds_count", method="POST",
                 route=route, status="201") == 4
    assert delta("coinpurse_http_request_duration_seconds_count", method="POST",
                 route="/internal/v1/wallet/debit", status="422") == 1
    assert delta("coinpurse_idempotent_replays_total") == 1
    assert delta("coinpurse_refusals_total", code="insufficient_funds", status="422") == 1
    assert delta("coinpurse_ledger_transactions_total", currency="points", kind="credit") == 3
    assert delta("coinpurse_ledger_volume_total", currency="points", kind="credit") == 21
    assert delta("coinpurse_ledger_batches_total") >= 1
    # Every request is a ledger job: 3 credits, the replay (found in the batch), the refusal.
    assert delta("coinpurse_ledger_batch_jobs_sum") == 5
    assert delta("coinpurse_ledger_commit_seconds_count") == delta(
        "coinpurse_ledger_batches_total")
    for gauge in ("coinpurse_ledger_queue_depth", "coinpurse_db_pool_in_use",
                  "coinpurse_db_pool_size", "coinpurse_webhook_inbox_backlog",
                  "coinpurse_webhook_inbox_oldest_age_seconds"):
        assert re.search(rf"^{gauge} ", after, re.M), gauge
    assert value(after, "coinpurse_db_pool_size") >= 1


async def test_the_webhook_inbox_backlog(app: Any, client: httpx.AsyncClient) -> None:
    """An event received and not applied counts in the backlog, with its age."""
    from coinpurse.core.clock import utcnow
    from coinpurse.ops import service
    from coinpurse.payments import repository

    state = app.state.coinpurse
    async with state.db.begin() as conn:
        await repository.insert_event(conn, provider="mock", event_id="evt-1",
                                      event_type="payment.succeeded", body=b"{}",
                                      status="received", error=None, now=utcnow())
    await service.sample(state.db, state.ledger)
    text = await scrape(client)
    assert value(text, "coinpurse_webhook_inbox_backlog") == 1
    assert value(text, "coinpurse_webhook_inbox_oldest_age_seconds") >= 0


def test_several_processes_add_up(pg_url: str, make_key_sync: Any) -> None:
    """serve --workers 2: whichever process answers /metrics, and the --metrics-port
    server, count every request of both."""
    key = make_key_sync(pg_url)
    server = Server(pg_url, workers=2, extra_env={"COINPURSE_METRICS_TOKEN": TOKEN},
                    args=["--metrics-port", str(metrics_port := _free_port())])
    try:
        pids: set[int] = set()
        sent = 0
        while sent < 40 or (len(pids) < 2 and sent < 400):
            with httpx.Client(base_url=server.base_url) as c:  # a new connection each
                r = c.post("/internal/v1/wallet/credit", json=CREDIT,
                           headers={"X-API-Key": key, "Idempotency-Key": f"mp{sent}"})
                assert r.status_code == 201
                pids.add(c.get("/healthz").json()["pid"])
            sent += 1
        assert len(pids) == 2, "both processes answered"
        # A process records a request just after answering it: wait until all are in.
        deadline = time.monotonic() + 20
        while True:
            port_text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
            total = value(port_text, "coinpurse_http_request_duration_seconds_count",
                          method="POST", route="/internal/v1/wallet/credit", status="201")
            if total >= sent or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert total == sent
        assert value(port_text, "coinpurse_ledger_transactions_total", currency="points",
                     kind="credit") == sent
        for _ in range(4):
            text = httpx.get(server.base_url + "/metrics",
                             headers={"Authorization": f"Bearer {TOKEN}"}).text
            assert value(text, "coinpurse_http_request_duration_seconds_count",
                         method="POST", route="/internal/v1/wallet/credit",
                         status="201") == sent
    finally:
        server.stop()


def _free_port() -> int:
    from tests.pgserver import free_port

    return free_port()


async def test_outbound_provider_calls_are_counted(db_url: str) -> None:
    """Each call to a payment provider's API is counted by kind and outcome, with its time:
    the mock checkout succeeds, Stripe on a closed port fails (503 for the caller)."""
    from asgi_lifespan import LifespanManager

    from coinpurse.app import create_app
    from tests.conftest import auth, user_token

    settings = Settings(
        database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
        currencies="coins:0", topup_providers="mock,stripe",
        topup_packages="small:100:99:usd:coins", public_url="http://test",
        mock_webhook_secret="whsec-mock-for-tests-only",  # type: ignore[arg-type]
        stripe_secret_key="sk_test_not_a_real_key",  # type: ignore[arg-type]
        stripe_webhook_secrets="whsec_not_a_real_secret",  # type: ignore[arg-type]
        stripe_api_base=f"http://127.0.0.1:{_free_port()}",  # nothing listens there
        metrics_token=TOKEN, inbox_poll_s=0)  # type: ignore[arg-type]
    app = create_app(settings)
    user = auth(user_token("buyer-1"))
    async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        before = await scrape(c)
        ok = await c.post("/api/v1/topups", json={"provider": "mock", "package_id": "small"},
                          headers={**user, "Idempotency-Key": "out-1"})
        assert ok.status_code == 201, ok.text
        down = await c.post("/api/v1/topups", json={"provider": "stripe", "package_id": "small"},
                            headers={**user, "Idempotency-Key": "out-2"})
        assert down.status_code == 503 and down.json()["code"] == "provider_unavailable"
        after = await scrape(c)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("coinpurse_deliveries_total", kind="mock.checkout", outcome="ok") == 1
    assert delta("coinpurse_deliveries_total", kind="stripe.checkout", outcome="failed") == 1
    assert delta("coinpurse_delivery_duration_seconds_count", kind="stripe.checkout") == 1
