"""GraphQL tests: settings where every feature GraphQL shows is on (mock top-ups, withdrawals
with KYC tiers, the shop), and helpers that make money move through REST, so that what
GraphQL answers is checked against what REST did."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.kyc.repository import lock_profile
from coinpurse.kyc.tables import kyc_profiles
from tests.conftest import TEST_JWT_SECRET, auth, user_token

TIERS = {
    "0": {"requires": [], "withdrawals": False, "limits": {}},
    "1": {"requires": ["full_name"], "withdrawals": True,
          "limits": {"diamonds": {"withdraw_daily": 100_000}}},
}
MOCK_WHSEC = "whsec_test_fake_graphql_000000000"  # clearly fake: tests only
SETTINGS: dict[str, Any] = {
    "currencies": "points:0,diamonds:0,coins:0",
    "topup_providers": "mock",
    "topup_packages": "small:100:99:usd:coins",
    "public_url": "http://test",
    "mock_webhook_secret": MOCK_WHSEC,
    "withdrawal_currencies": "diamonds:10:5000",
    "kyc_tiers": json.dumps(TIERS),
    "shop_fee_bp": 1000,
    "rate_limit_user": "off",
    "rate_limit_ip": "off",
    "inbox_poll_s": 0,
}


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                    **SETTINGS)


def user(user_id: str, **claims: Any) -> dict[str, str]:
    return auth(user_token(user_id, **claims))


class Gql:
    """POST /graphql; ``data`` and ``errors`` of the answer."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(self, query: str, variables: dict[str, Any] | None = None,
                       headers: dict[str, str] | None = None) -> dict[str, Any]:
        r = await self.client.post("/graphql", json={"query": query,
                                                      "variables": variables or {}},
                                   headers=headers or {})
        assert r.status_code < 500, r.text
        assert r.headers["content-type"].startswith("application/json"), r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture
def gql(client: httpx.AsyncClient) -> Gql:
    return Gql(client)


def codes(answer: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in answer.get("errors", [])]


async def fund(client: httpx.AsyncClient, key: str, user_id: str, amount: int,
               currency: str = "points") -> dict[str, Any]:
    r = await client.post("/internal/v1/wallet/credit", json={
        "user_id": user_id, "currency": currency, "amount": amount, "description": "fund",
        "reference_id": "fund"}, headers={"X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


async def set_tier(settings: Settings, user_id: str, tier: int) -> None:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await lock_profile(conn, user_id)
            await conn.execute(update(kyc_profiles).where(kyc_profiles.c.user_id == user_id)
                               .values(tier=tier, updated_at=datetime.now(UTC)))
    finally:
        await engine.dispose()



@pytest.fixture(autouse=True)
async def _no_task_outlives_its_test() -> Any:
    """After the app's shutdown nothing of the test may still run on its loop. A task that
    swallows a cancellation would hang the loop's teardown (which cancels once) for ever:
    once seen in a full run, never reproduced alone. Fail naming it, with its stack."""
    yield
    import asyncio
    import io

    me = asyncio.current_task()
    stuck: list[asyncio.Task[Any]] = []
    for _ in range(5):
        stuck = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not stuck:
            return
        for task in stuck:
            task.cancel()
        await asyncio.wait(stuck, timeout=2)
    stuck = [t for t in stuck if not t.done()]
    if stuck:
        out = io.StringIO()
        for task in stuck:
            task.print_stack(file=out)
        pytest.fail(f"tasks outlived the test and ignore cancellation: {stuck}\n"
                    f"{out.getvalue()}")
