"""The ledger's queue is bounded (a full queue refuses at once: 503 ``overloaded`` with
Retry-After, never an unbounded wait), and its hooks see every committed batch once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.app import create_app
from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.core.errors import Overloaded
from coinpurse.ledger.idempotency import StoredResponse
from coinpurse.ledger.model import Outcome, Posting, Rejection, TransactionSpec
from coinpurse.ledger.service import CommittedBatch, Ledger
from tests.conftest import MakeKey


def _spec(src: str, dst: str, amount: int) -> TransactionSpec:
    return TransactionSpec(kind="transfer", postings=(Posting(src, dst, amount, "points"),),
                           description="t", reference_id="r", initiator="test")


def _render(_o: list[Outcome]) -> StoredResponse:
    return StoredResponse(200, b"{}")


@pytest.fixture
async def ledger(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Ledger]:
    """A ledger whose queue holds 2 jobs (or as many as the test's ``queue_max`` mark)."""
    marker = request.node.get_closest_marker("queue_max")
    db = create_engine(settings.database_url, pool_size=2)
    led = Ledger(db, may_go_negative=settings.may_go_negative, idempotency_ttl_s=3600,
                 committers=1, queue_max=marker.args[0] if marker else 2)
    await led.start()
    yield led
    await led.stop()
    await db.dispose()


async def test_a_full_queue_refuses_at_once(ledger: Ledger,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = _block_commits(ledger, monkeypatch)
    first = asyncio.create_task(ledger.submit([_spec("world", "user:a", 1)], render=_render))
    await asyncio.wait_for(entered.wait(), 10)  # the committer holds it, inside the "commit"
    queued = [asyncio.create_task(ledger.submit([_spec("world", "user:a", 1)],
                                                render=_render)) for _ in range(2)]
    await _until(lambda: ledger.queue_depth == 2)
    with pytest.raises(Overloaded) as refused:
        await ledger.submit([_spec("world", "user:a", 1)], render=_render)
    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
    release.set()
    results = await asyncio.gather(first, *queued)
    assert all(r.response.status == 200 for r in results)  # the waiting ones all posted


def _block_commits(ledger: Ledger,
                   monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the committer stop inside its next commit until ``release`` is set."""
    entered, release = asyncio.Event(), asyncio.Event()
    original = ledger._commit

    async def slow_commit(jobs: Any) -> Any:
        entered.set()
        await release.wait()
        return await original(jobs)

    monkeypatch.setattr(ledger, "_commit", slow_commit)
    return entered, release


async def _until(condition: Any, timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the ledger has no event to wait on
            await asyncio.sleep(0.01)


class _Recorder:
    def __init__(self) -> None:
        self.written: list[CommittedBatch] = []
        self.after: list[CommittedBatch] = []

    async def write(self, conn: AsyncConnection, batch: CommittedBatch) -> None:
        # Inside the transaction: what it writes commits, or not, with the batch.
        await conn.execute(text("SELECT 1"))
        self.written.append(batch)

    def committed(self, batch: CommittedBatch) -> None:
        self.after.append(batch)


@pytest.mark.queue_max(100)
async def test_hooks_see_each_committed_batch(ledger: Ledger) -> None:
    hook = _Recorder()
    ledger.add_hook(hook)
    done = await asyncio.gather(*(ledger.submit([_spec("world", f"user:{i}", 5)],
                                                render=_render) for i in range(10)))
    refused = await ledger.submit([_spec("user:nobody", "user:x", 5)], render=_render)
    assert refused.outcomes is not None and isinstance(refused.outcomes[0], Rejection)
    posted = [t for b in hook.after for t in b.transactions]
    assert len(posted) == 10 and {t.id for t in posted} == {
        o.id for r in done for o in r.outcomes or [] if not isinstance(o, Rejection)}
    assert [b.transactions for b in hook.written] == [b.transactions for b in hook.after]


async def test_a_full_queue_answers_503_over_http(settings: Settings, make_key: MakeKey,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(settings.model_copy(update={"ledger_queue_max": 1}))
    key = await make_key()
    async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        ledger: Ledger = app.state.coinpurse.ledger
        entered, release = _block_commits(ledger, monkeypatch)

        def credit(n: int) -> Any:
            return client.post("/internal/v1/wallet/credit", headers={
                "X-API-Key": key, "Idempotency-Key": f"q-{n}"}, json={
                "user_id": "u", "currency": "points", "amount": 1, "description": "d",
                "reference_id": "r"})

        busy = [asyncio.create_task(credit(0))]
        await asyncio.wait_for(entered.wait(), 10)
        busy.append(asyncio.create_task(credit(1)))
        await _until(lambda: ledger.queue_depth == 1)
        refused = await credit(99)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "overloaded"
        release.set()
        assert [r.status_code for r in await asyncio.gather(*busy)] == [201, 201]
        again = await credit(99)  # the refused request was not stored: it posts now
        assert again.status_code == 201

