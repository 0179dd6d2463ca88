"""Fixtures of the events tests: fast settings, a webhook receiver, waiting helpers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from coinpurse.config import Settings
from tests.conftest import TEST_JWT_SECRET, auth, user_token
from tests.events.receiver import Receiver

FAST = dict(webhook_allow_private=True, webhook_backoff_base_s=0.05,
            webhook_backoff_max_s=0.2, live_poll_s=0.1, rate_limit_user="off",
            rate_limit_ip="off")
ADMIN = auth(user_token("ops-1", role="admin"))


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                    currencies="points:0,usdt:2,diamonds:0", **FAST)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


async def eventually(check: Callable[[], Awaitable[Any] | Any], timeout_s: float = 15,
                     what: str = "") -> Any:
    """Poll ``check`` until it returns something true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


async def credit(client: httpx.AsyncClient, key: str, user: str, amount: int,
                 currency: str = "points") -> dict[str, Any]:
    r = await client.post("/internal/v1/wallet/credit", headers={
        "X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex}, json={
        "user_id": user, "currency": currency, "amount": amount, "description": "fund",
        "reference_id": "fund"})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def add_endpoint(client: httpx.AsyncClient, url: str,
                       events: list[str] | None = None) -> dict[str, Any]:
    r = await client.post("/admin/v1/webhook-endpoints", headers=ADMIN, json={
        "url": url, "events": events or ["transaction.posted"], "description": "test"})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out
