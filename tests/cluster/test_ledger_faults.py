"""The ledger through real network faults (tests/netfault.py) on a real PostgreSQL server.

The proxy cuts a connection exactly around one protocol message, so each case is exact:
COMMIT applied and its answer lost; COMMIT never applied; a server that stops answering.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
from sqlalchemy import func, select

from coinpurse.core.cluster.urls import DbOptions
from coinpurse.core.db import create_engine
from coinpurse.core.errors import ServiceUnavailable
from coinpurse.ledger.idempotency import StoredResponse, claim
from coinpurse.ledger.model import Outcome, Posting, Transaction, TransactionSpec
from coinpurse.ledger.service import Ledger
from coinpurse.ledger.tables import idempotency_keys, transactions
from tests.conftest import _truncate
from tests.netfault import FaultProxy

FAST = DbOptions(connect_timeout_s=1.0, command_timeout_s=1.5)


@pytest.fixture
def pg(pg_url: str) -> str:
    _truncate(pg_url)
    return pg_url


@pytest.fixture
def proxy(pg: str) -> Iterator[FaultProxy]:
    port = int(pg.rsplit(":", 1)[1].split("/", 1)[0])
    p = FaultProxy(port)
    yield p
    p.stop()


def via(proxy: FaultProxy, pg: str) -> str:
    return pg.replace(pg.rsplit("@", 1)[1].split("/", 1)[0], f"127.0.0.1:{proxy.port}")


@pytest.fixture
async def ledger(proxy: FaultProxy, pg: str) -> AsyncIterator[Ledger]:
    db = create_engine(via(proxy, pg), pool_size=2, options=FAST)
    led = Ledger(db, may_go_negative=lambda a: not a.startswith("user:"),
                 idempotency_ttl_s=3600, retry_s=10)
    await led.start()
    yield led
    await led.stop()
    await db.dispose()


def _render(outcomes: list[Outcome]) -> StoredResponse:
    (o,) = outcomes
    assert isinstance(o, Transaction)
    return StoredResponse(201, orjson.dumps({"id": o.id}))


def credit(user: str, amount: int = 10) -> TransactionSpec:
    return TransactionSpec(kind="credit", postings=(Posting("service:t", f"user:{user}",
                                                            amount, "points"),),
                           description="credit", reference_id=user, initiator="service:t",
                           service="t")


async def counts(pg: str) -> tuple[int, int]:
    db = create_engine(pg, pool_size=1)
    try:
        async with db.connect() as conn:
            txs = (await conn.execute(select(func.count()).select_from(transactions))).scalar()
            keys = (await conn.execute(
                select(func.count()).select_from(idempotency_keys))).scalar()
    finally:
        await db.dispose()
    return int(txs or 0), int(keys or 0)


async def test_commit_applied_answer_lost_replays_once(ledger: Ledger, proxy: FaultProxy,
                                                        pg: str) -> None:
    """The COMMIT reaches the server, its answer never comes back: the retry finds the
    stored key and replays the first answer; one transaction, not two."""
    await ledger.submit([credit("warm")], render=_render,
                        claim=claim("service:t", "warm", "credit", 1))
    proxy.arm(b"COMMIT", after=True)
    c = claim("service:t", "k1", "credit", {"amount": 10})
    result = await ledger.submit([credit("a")], render=_render, claim=c)
    assert proxy.fired == 1
    assert result.replayed  # the commit had happened: found by its key
    assert await counts(pg) == (2, 2)
    again = await ledger.submit([credit("a")], render=_render, claim=c)
    assert again.replayed and again.response == result.response


async def test_commit_lost_before_the_server_is_rerun(ledger: Ledger, proxy: FaultProxy,
                                                      pg: str) -> None:
    """The connection drops with the COMMIT: it never applied, so the re-run posts it once."""
    await ledger.submit([credit("warm")], render=_render,
                        claim=claim("service:t", "warm", "credit", 1))
    proxy.arm(b"COMMIT", after=False)
    result = await ledger.submit([credit("a")], render=_render,
                                 claim=claim("service:t", "k1", "credit", 2))
    assert proxy.fired == 1
    assert not result.replayed and result.response.status == 201
    assert await counts(pg) == (2, 2)


async def test_unclaimed_job_with_unknown_outcome_is_not_posted_twice(
        ledger: Ledger, proxy: FaultProxy, pg: str) -> None:
    """No key to look up: the ledger answers 503 rather than risk a second posting."""
    await ledger.submit([credit("warm")], render=_render,
                        claim=claim("service:t", "warm", "credit", 1))
    proxy.arm(b"COMMIT", after=True)
    with pytest.raises(ServiceUnavailable, match="no idempotency key"):
        await ledger.submit([credit("a")], render=_render)
    assert await counts(pg) == (2, 1)  # applied exactly once, by the lost commit


async def test_unclaimed_job_rolled_back_before_commit_is_rerun(
        ledger: Ledger, proxy: FaultProxy, pg: str) -> None:
    """Dropped at BEGIN: nothing was sent, so even an unclaimed job is simply re-run."""
    await ledger.submit([credit("warm")], render=_render,
                        claim=claim("service:t", "warm", "credit", 1))
    proxy.arm(b"BEGIN", after=False)
    result = await ledger.submit([credit("a")], render=_render)
    assert proxy.fired == 1 and result.response.status == 201
    assert await counts(pg) == (2, 1)


async def test_a_hung_server_answers_503_in_bounded_time_then_recovers(
        pg: str, proxy: FaultProxy) -> None:
    db = create_engine(via(proxy, pg), pool_size=2, options=FAST)
    led = Ledger(db, may_go_negative=lambda a: not a.startswith("user:"),
                 idempotency_ttl_s=3600, retry_s=2)
    await led.start()
    try:
        await led.submit([credit("warm")], render=_render,
                         claim=claim("service:t", "warm", "credit", 1))
        proxy.blackhole()
        started = time.monotonic()
        c = claim("service:t", "hung", "credit", 1)
        with pytest.raises(ServiceUnavailable, match="same idempotency key"):
            await led.submit([credit("a")], render=_render, claim=c)
        waited = time.monotonic() - started
        # command timeout (1.5 s) + retries within 2 s, each bounded by the connect timeout
        assert waited < 1.5 + 2 + 1 + 1, waited
        proxy.blackhole(False)
        result = await asyncio.wait_for(
            led.submit([credit("a")], render=_render, claim=c), 10)
        assert result.response.status == 201
        txs, _ = await counts(pg)
        assert txs == 2  # "hung" applied once: its COMMIT never reached the server
    finally:
        proxy.blackhole(False)
        await led.stop()
        await db.dispose()


async def test_restart_midway_through_concurrent_batches(ledger: Ledger, proxy: FaultProxy,
                                                         pg: str) -> None:
    """Every connection dropped while jobs stream in: all are answered, each key posted
    exactly once."""
    async def one(i: int) -> StoredResponse:
        result = await ledger.submit([credit(f"u{i % 7}", 1 + i % 5)], render=_render,
                                     claim=claim("service:t", f"c{i}", "credit", i))
        return result.response

    tasks = [asyncio.create_task(one(i)) for i in range(200)]
    for _ in range(3):
        await asyncio.sleep(0.05)
        proxy.reset_all()
    answers = await asyncio.gather(*tasks)
    assert all(a.status == 201 for a in answers)
    ids = {orjson.loads(a.body)["id"] for a in answers}
    assert len(ids) == 200
    assert await counts(pg) == (200, 200)


async def test_unclaimed_hold_capture_is_rerun_and_refused_the_second_time(
        ledger: Ledger, proxy: FaultProxy, pg: str) -> None:
    """Closing a hold needs no key: a hold closes once. The capture's COMMIT applies, its
    answer is lost, the re-run finds the hold captured (hold_not_open): one capture."""
    from datetime import UTC, datetime, timedelta

    from coinpurse.ledger.model import CaptureHold, HoldOutcome, PlaceHold, Rejection

    await ledger.submit([credit("a", 100)], render=_render,
                        claim=claim("service:t", "fund", "credit", 1))
    hold = PlaceHold(hold_id="h1", address="user:a", currency="points", amount=60,
                     destination="service:t", description="hold", reference_id="r",
                     service="t", expires_at=datetime.now(UTC) + timedelta(hours=1))

    def any_answer(_o: list[Outcome]) -> StoredResponse:
        return StoredResponse(200, b"{}")

    placed = await ledger.submit([hold], render=any_answer,
                                 claim=claim("service:t", "hold", "hold", 1))
    assert isinstance(placed.outcomes and placed.outcomes[0], HoldOutcome)
    proxy.arm(b"COMMIT", after=True)
    result = await ledger.submit([CaptureHold(hold_id="h1", service="t")], render=any_answer)
    assert proxy.fired == 1
    assert result.outcomes is not None
    (outcome,) = result.outcomes
    assert isinstance(outcome, Rejection) and outcome.code == "hold_not_open"
    txs, _ = await counts(pg)
    assert txs == 2  # the credit and one capture, not two


async def test_stopping_while_retrying_answers_the_waiting_jobs(
        pg: str, proxy: FaultProxy) -> None:
    db = create_engine(via(proxy, pg), pool_size=1, options=FAST)
    led = Ledger(db, may_go_negative=lambda a: not a.startswith("user:"),
                 idempotency_ttl_s=3600, retry_s=60)
    await led.start()
    try:
        await led.submit([credit("warm")], render=_render,
                         claim=claim("service:t", "warm", "credit", 1))
        proxy.blackhole()
        waiting = asyncio.create_task(led.submit(
            [credit("a")], render=_render, claim=claim("service:t", "k", "credit", 1)))
        await asyncio.sleep(2.5)  # past the command timeout: the ledger is retrying
        assert not waiting.done()
        await led.stop()
        with pytest.raises(ServiceUnavailable, match="shutting down"):
            await asyncio.wait_for(waiting, 5)
    finally:
        proxy.blackhole(False)
        await db.dispose()
