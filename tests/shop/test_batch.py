"""Orders inside one ledger batch, made deterministic: the committer is held busy while the
orders queue, so the next batch takes them all at once."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.ledger.idempotency import StoredResponse
from coinpurse.ledger.model import (
    AccountKey,
    AccountState,
    Operation,
    Outcome,
    Posting,
    Rejection,
    TransactionSpec,
)
from coinpurse.ledger.service import Ledger, RowInserts
from coinpurse.shop import repository
from tests.conftest import MakeKey
from tests.invariants import assert_invariants, ledger_state_async
from tests.shop.conftest import balance, buy, fund, product, rows


@asynccontextmanager
async def _committer_held(ledger: Ledger) -> AsyncIterator[asyncio.Event]:
    """While inside, the committer is stuck in a batch of one job; set the event to let it
    go, and everything queued meanwhile forms the next batch."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def prepare(_c: AsyncConnection, _s: Mapping[AccountKey, AccountState],
                      _p: Sequence[RowInserts]) -> Sequence[Operation] | Rejection:
        entered.set()
        await release.wait()
        return []

    def render(_o: list[Outcome]) -> StoredResponse:
        return StoredResponse(200, b"{}")

    spec = TransactionSpec(kind="test", postings=(Posting("world", "user:z", 1, "points"),),
                           description="hold", reference_id="hold", initiator="test")
    blocker = asyncio.create_task(ledger.submit([spec], render=render, prepare=prepare))
    await entered.wait()
    try:
        yield release
    finally:
        release.set()
        await blocker


async def _queued(ledger: Ledger, n: int) -> None:
    for _ in range(500):
        if ledger.queue_depth >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{ledger.queue_depth} jobs queued, not {n}")


async def _orders_in_one_batch(client: httpx.AsyncClient, app: Any, product_id: str,
                               buyers: list[str]) -> list[httpx.Response]:
    ledger: Ledger = app.state.coinpurse.ledger
    async with _committer_held(ledger) as release:
        pending = [asyncio.create_task(buy(client, b, product_id)) for b in buyers]
        await _queued(ledger, len(buyers))
        release.set()
        return list(await asyncio.gather(*pending))


async def test_later_orders_of_a_batch_see_the_units_earlier_ones_took(
        client: httpx.AsyncClient, app: Any, make_key: MakeKey, db_url: str) -> None:
    key = await make_key()
    buyers = [f"b{i}" for i in range(6)]
    for b in buyers:
        await fund(client, key, b, 1000)
    item = await product(client, "m1", price=100, stock=4)
    ledger: Ledger = app.state.coinpurse.ledger
    batches = ledger.batches_committed
    answers = await _orders_in_one_batch(client, app, item["id"], buyers)
    assert ledger.batches_committed - batches == 2  # the held one, then all six orders
    codes = Counter((r.status_code, r.json().get("code")) for r in answers)
    assert codes == {(201, None): 4, (409, "out_of_stock"): 2}
    assert [r.json()["stock"] for r in answers if r.status_code == 409] == [0, 0]
    assert int((await rows(db_url, "SELECT stock FROM products"))[0][0]) == 0
    assert_invariants(await ledger_state_async(db_url))


async def test_a_stale_decision_fails_the_batch_and_nothing_is_oversold(
        client: httpx.AsyncClient, app: Any, make_key: MakeKey, db_url: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """If the batch's own accounting were wrong (here: it forgets its earlier sales), the
    stock decrement finds too few units, the batch rolls back as a whole and the ledger
    re-runs its jobs one by one: one sale, no money without its order and its stock."""
    key = await make_key()
    buyers = [f"b{i}" for i in range(4)]
    for b in buyers:
        await fund(client, key, b, 1000)
    item = await product(client, "m1", price=100, stock=1)
    monkeypatch.setattr(repository, "stock_taken", lambda _pending, _pid: 0)
    with caplog.at_level(logging.WARNING, logger="coinpurse.ledger"):
        answers = await _orders_in_one_batch(client, app, item["id"], buyers)
    assert any("retrying one by one" in r.getMessage() for r in caplog.records)
    codes = Counter((r.status_code, r.json().get("code")) for r in answers)
    assert codes == {(201, None): 1, (409, "out_of_stock"): 3}
    winner = next(r.json()["buyer_id"] for r in answers if r.status_code == 201)
    for b in buyers:
        assert await balance(db_url, f"user:{b}") == (900 if b == winner else 1000)
    assert len(await rows(db_url, "SELECT id FROM orders")) == 1
    assert int((await rows(db_url, "SELECT stock FROM products"))[0][0]) == 0
    assert_invariants(await ledger_state_async(db_url))
