"""Expired idempotency keys are purged in bounded chunks, however many there are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from coinpurse.core.db import create_engine
from coinpurse.ledger.idempotency import purge_all_expired
from coinpurse.ledger.tables import idempotency_keys
from tests.conftest import MakeKey


async def test_purge_removes_only_expired_keys_then_a_key_can_be_reused(
    client: httpx.AsyncClient, make_key: MakeKey, db_url: str
) -> None:
    key = await make_key()
    body = {"user_id": "u", "currency": "points", "amount": 5, "description": "d",
            "reference_id": "r"}
    h = {"X-API-Key": key, "Idempotency-Key": "old-key"}
    first = await client.post("/internal/v1/wallet/credit", json=body, headers=h)
    assert first.status_code == 201
    engine = create_engine(db_url, pool_size=1)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(idempotency_keys.insert(), [
            {"scope": "service:bulk", "key": f"k{i}", "request_hash": "0" * 64,
             "status_code": 201, "response_body": b"{}", "created_at": now,
             "expires_at": now - timedelta(seconds=1)}
            for i in range(2500)])
    purged = await purge_all_expired(engine, now)
    assert purged == 2500
    async with engine.connect() as conn:
        left = (await conn.execute(select(func.count()).select_from(idempotency_keys))).scalar()
    assert left == 1  # the live key of the credit above
    # Once its own key has expired and been purged, the same key starts a new request.
    assert await purge_all_expired(engine, now + timedelta(days=2)) == 1
    await engine.dispose()
    again = await client.post("/internal/v1/wallet/credit", json=body, headers=h)
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in again.headers
