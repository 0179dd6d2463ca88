"""The shop's tests: settings with a 10% fee (easy sums), and helpers that fund buyers,
create products and read the tables straight, independently of the shop's own code."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from tests.conftest import TEST_JWT_SECRET, auth, user_token

FEE_BP = 1000


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                    currencies="points:0,usdt:2,diamonds:0", shop_fee_bp=FEE_BP,
                    rate_limit_user="off", rate_limit_ip="off", inbox_poll_s=0)


def as_user(user: str, idem: str | None = None, **claims: Any) -> dict[str, str]:
    headers = auth(user_token(user, **claims))
    headers["Idempotency-Key"] = idem or uuid.uuid4().hex
    return headers


def as_merchant(user: str, idem: str | None = None) -> dict[str, str]:
    return as_user(user, idem, role="merchant")


ADMIN = auth(user_token("ops-1", role="admin", mfa=True))
AUDITOR = auth(user_token("aud-1", role="auditor", mfa=True))


async def fund(client: httpx.AsyncClient, key: str, user: str, amount: int,
               currency: str = "points") -> None:
    r = await client.post("/internal/v1/wallet/credit", json={
        "user_id": user, "currency": currency, "amount": amount, "description": "fund",
        "reference_id": "fund"}, headers={"X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text


async def product(client: httpx.AsyncClient, merchant: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "Golden sword", "price": 100, "currency": "points", "stock": 10,
            **fields}
    r = await client.post("/api/v1/products", json=body, headers=as_merchant(merchant))
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


async def buy(client: httpx.AsyncClient, buyer: str, product_id: str, quantity: int = 1,
              idem: str | None = None, **extra: Any) -> httpx.Response:
    return await client.post("/api/v1/orders", headers=as_user(buyer, idem),
                             json={"product_id": product_id, "quantity": quantity, **extra})


async def rows(url: str, sql: str, **params: Any) -> list[Any]:
    """Read the tables directly."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def balance(url: str, address: str, currency: str = "points") -> int:
    found = await rows(url, "SELECT balance FROM accounts WHERE address = :a AND currency = :c",
                       a=address, c=currency)
    return int(found[0][0]) if found else 0


async def stock(url: str, product_id: str) -> int:
    return int((await rows(url, "SELECT stock FROM products WHERE id = :i", i=product_id))[0][0])
