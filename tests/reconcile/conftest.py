"""Reconciliation tests: a ledger with some history, made through the API; raw SQL to
tamper with it, as someone with database access would; and the reconciler itself.

The settings are the payments tests' (every provider enabled, Stripe and Razorpay pointed
at the local fake of their APIs, the inbox applied by the tests themselves), with no
background sealer: the tests seal when they mean to (``seal``), so that a row tampered with
before that is sealed as it then is."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.reconcile.model import Discrepancy, RunDetail
from coinpurse.reconcile.sealer import Sealer
from coinpurse.reconcile.service import Reconciler
from tests.conftest import MakeKey
from tests.fakes.providers import FakeProviders
from tests.payments.conftest import fakes  # noqa: F401  (a fixture)
from tests.payments.conftest import settings as payment_settings

APPEND_ONLY = ("transactions", "entries", "ledger_seals")


@pytest.fixture
def settings(db_url: str, fakes: FakeProviders) -> Settings:  # noqa: F811
    base: Settings = payment_settings.__wrapped__(db_url, fakes)  # type: ignore[attr-defined]
    return Settings(**{**base.model_dump(exclude_unset=True), "seal_interval_s": 0})


@asynccontextmanager
async def reconciler(settings: Settings) -> AsyncIterator[Reconciler]:
    engine = create_engine(settings.database_url, pool_size=3)
    try:
        yield Reconciler(engine, settings, settings)
    finally:
        await engine.dispose()


async def seal(settings: Settings) -> int:
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        return await Sealer(engine).seal_pending()
    finally:
        await engine.dispose()


async def run(settings: Settings, kind: str = "ledger", mode: str = "incremental",
              **kw: Any) -> RunDetail:
    """A run as the CLI makes it; its stored outcome."""
    async with reconciler(settings) as rec:
        started = await rec.begin(kind, mode=mode, trigger="cli")
        await rec.execute(started, **kw)
        return await rec.get(started.id)


async def tamper(url: str, *statements: tuple[str, dict[str, Any]]) -> None:
    """Raw SQL as someone with full access: on PostgreSQL a superuser who switches the
    append-only triggers off for the session, on SQLite someone who drops them."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SET LOCAL session_replication_role = replica"))
            else:
                for table in APPEND_ONLY:
                    for action in ("update", "delete"):
                        await conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{action}"))
            for sql, params in statements:
                await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


async def query(url: str, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params or {})).all())
    finally:
        await engine.dispose()


def found(detail: RunDetail, check: str) -> list[Discrepancy]:
    return [d for d in detail.discrepancies if d.check == check]


class Book:
    """Money moved through the API, as a service would."""

    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client = client
        self.headers = {"X-API-Key": key}

    async def credit(self, user: str, amount: int, currency: str = "points",
                     description: str = "Quest reward") -> dict[str, Any]:
        r = await self.client.post("/internal/v1/wallet/credit", headers={
            **self.headers, "Idempotency-Key": uuid.uuid4().hex}, json={
            "user_id": user, "currency": currency, "amount": amount,
            "description": description, "reference_id": f"q-{uuid.uuid4().hex[:8]}"})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def transfer(self, source: str, destination: str, amount: int,
                       currency: str = "points") -> dict[str, Any]:
        r = await self.client.post("/internal/v1/transfers", headers={
            **self.headers, "Idempotency-Key": uuid.uuid4().hex}, json={
            "postings": [{"source": f"user:{source}", "destination": f"user:{destination}",
                          "amount": amount, "currency": currency}],
            "description": "Trade", "reference_id": f"t-{uuid.uuid4().hex[:8]}"})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    async def hold(self, user: str, amount: int, currency: str = "points") -> dict[str, Any]:
        r = await self.client.post("/internal/v1/holds", headers={
            **self.headers, "Idempotency-Key": uuid.uuid4().hex}, json={
            "user_id": user, "currency": currency, "amount": amount,
            "description": "Call", "reference_id": f"h-{uuid.uuid4().hex[:8]}"})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture
async def book(client: httpx.AsyncClient, make_key: MakeKey) -> Book:
    """A small ledger: credits, transfers, an open hold."""
    b = Book(client, await make_key("games", "*"))
    await b.credit("alice", 1000)
    await b.credit("bob", 250)
    await b.transfer("alice", "bob", 100)
    await b.transfer("bob", "carol", 30)
    await b.credit("alice", 5, "coins")
    await b.hold("alice", 50)
    return b
