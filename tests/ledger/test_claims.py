"""A batch's idempotency keys and locks: replays, reused keys and new jobs side by side in
one batch, on both databases. On PostgreSQL a batch without captures or releases looks its
keys up and locks its accounts in one statement (store.find_and_lock); one with a capture
takes the other way (holds first). Both must answer alike and move money only once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from coinpurse.config import Settings
from coinpurse.core.clock import utcnow
from coinpurse.core.db import create_engine
from coinpurse.ledger import queries, store
from coinpurse.ledger.errors import IdempotencyKeyReused
from coinpurse.ledger.idempotency import StoredResponse, claim
from coinpurse.ledger.model import CaptureHold, Outcome, PlaceHold, Posting, TransactionSpec
from coinpurse.ledger.service import JobResult, Ledger
from coinpurse.ledger.tables import accounts
from tests.ledger.test_queue_and_hooks import _block_commits


def _spec(src: str, dst: str, amount: int) -> TransactionSpec:
    return TransactionSpec(kind="transfer", postings=(Posting(src, dst, amount, "points"),),
                           description="t", reference_id="r", initiator="test")


def _render(tag: str):  # type: ignore[no-untyped-def]
    def render(outcomes: list[Outcome]) -> StoredResponse:
        return StoredResponse(201, f'{{"tag":"{tag}","n":{len(outcomes)}}}'.encode())
    return render


@pytest.fixture
async def ledger(settings: Settings) -> AsyncIterator[Ledger]:
    db = create_engine(settings.database_url, pool_size=2)
    led = Ledger(db, may_go_negative=settings.may_go_negative, idempotency_ttl_s=3600)
    await led.start()
    yield led
    await led.stop()
    await db.dispose()


async def _balance(ledger: Ledger, address: str) -> tuple[int, int]:
    async with ledger._db.connect() as conn:
        b = (await queries.balances(conn, address, ["points"]))["points"]
    return b.balance, b.held


@pytest.mark.parametrize("with_capture", [False, True])
async def test_replays_reused_keys_and_new_jobs_in_one_batch(
        ledger: Ledger, settings: Settings, with_capture: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = await ledger.submit([_spec("world", "user:a", 100)], render=_render("first"),
                                claim=claim("service:t", "k1", "credit", {"n": 1}))
    await ledger.submit([_spec("world", "user:d", 1)], render=_render("d"),
                        claim=claim("service:t", "k3", "credit", {"n": 9}))
    # Every account of the batch below exists (and this process knows it), so on
    # PostgreSQL the batch without a capture takes the one-statement way.
    await ledger.submit([_spec("world", "user:b", 1), _spec("world", "user:c", 1)],
                        render=_render("bc"))
    hold = PlaceHold("h1", "user:a", "points", 30, "user:c", "d", "r", "t",
                     utcnow() + timedelta(hours=1))
    await ledger.submit([hold], render=_render("hold"))
    assert not first.replayed and first.response.body == b'{"tag":"first","n":1}'

    one_statement = []
    original = store.find_and_lock

    async def spy(*args: Any, **kwargs: Any) -> Any:
        one_statement.append(True)
        return await original(*args, **kwargs)

    monkeypatch.setattr(store, "find_and_lock", spy)
    entered, release = _block_commits(ledger, monkeypatch)
    blocker = asyncio.create_task(ledger.submit([_spec("world", "user:z", 1)],
                                                render=_render("z")))
    await asyncio.wait_for(entered.wait(), 10)
    jobs = [  # queued while the committer is busy: they go as one batch
        ledger.submit([_spec("world", "user:a", 100)], render=_render("again"),
                      claim=claim("service:t", "k1", "credit", {"n": 1})),  # a replay
        ledger.submit([_spec("world", "user:a", 5)], render=_render("other"),
                      claim=claim("service:t", "k3", "credit", {"n": 2})),  # reused key
        ledger.submit([_spec("user:a", "user:b", 10)], render=_render("new"),
                      claim=claim("service:t", "k2", "transfer", {"n": 3})),
    ]
    if with_capture:
        jobs.append(ledger.submit([CaptureHold("h1", None, 20)], render=_render("cap")))
    tasks = [asyncio.create_task(j) for j in jobs]
    await asyncio.sleep(0.05)
    release.set()
    await blocker
    replay, reused, new, *capture = await asyncio.gather(*tasks, return_exceptions=True)

    # The batch went the one-statement way exactly when it could (PostgreSQL, no capture).
    assert bool(one_statement) == (settings.database_url.startswith("postgresql")
                                   and not with_capture)
    assert isinstance(replay, JobResult) and replay.replayed
    assert replay.response == first.response  # the stored answer, byte for byte
    assert isinstance(reused, IdempotencyKeyReused)
    assert isinstance(new, JobResult) and not new.replayed
    assert new.response.body == b'{"tag":"new","n":1}'
    captured = 20 if with_capture else 0
    if with_capture:
        assert isinstance(capture[0], JobResult) and not capture[0].replayed
    # user:a got 100 once (not twice), paid 10 to b and, with the capture, 20 to c; the
    # hold's 30 stay held until then.
    assert await _balance(ledger, "user:a") == (100 - 10 - captured,
                                                 0 if with_capture else 30)
    assert await _balance(ledger, "user:b") == (1 + 10, 0)
    assert await _balance(ledger, "user:c") == (1 + captured, 0)
    again = await ledger.submit([_spec("user:a", "user:b", 10)], render=_render("x"),
                                claim=claim("service:t", "k2", "transfer", {"n": 3}))
    assert again.replayed and again.response == StoredResponse(201, b'{"tag":"new","n":1}')


async def test_a_refused_reused_key_creates_no_account(ledger: Ledger) -> None:
    await ledger.submit([_spec("world", "user:a", 5)], render=_render("a"),
                        claim=claim("service:t", "k9", "credit", {"n": 1}))
    with pytest.raises(IdempotencyKeyReused):
        await ledger.submit([_spec("world", "user:never-seen", 5)], render=_render("x"),
                            claim=claim("service:t", "k9", "credit", {"n": 2}))
    async with ledger._db.connect() as conn:
        found = (await conn.execute(select(func.count()).select_from(accounts).where(
            accounts.c.address == "user:never-seen"))).scalar()
    assert found == 0
