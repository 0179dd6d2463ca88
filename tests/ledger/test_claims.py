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
from sqlalchemy import func, select, text

from coinpurse.config import Settings
from coinpurse.core.clock import utcnow
from coinpurse.core.db import create_engine
from coinpurse.core.errors import ServiceUnavailable
from coinpurse.ledger import queries, store
from coinpurse.ledger.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from coinpurse.ledger.idempotency import StoredResponse, claim
from coinpurse.ledger.model import CaptureHold, Outcome, PlaceHold, Posting, TransactionSpec
from coinpurse.ledger.service import JobResult, Ledger
from coinpurse.ledger.tables import accounts
from tests.conftest import TEST_JWT_SECRET, _truncate
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

    async def spy(conn: Any, claims: Any, keys: Any) -> Any:
        states = await original(conn, claims, keys)
        if any(c.key == "k2" for c in claims):  # the batch below (not the blocker, which
            one_statement.append(states[2].keys() >= keys)  # tries it too: a new account)
        return states

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
    one_way = settings.database_url.startswith("postgresql") and not with_capture
    assert one_statement == ([True] if one_way else [])  # once, every account found
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


# PostgreSQL only: the one statement that tries the keys' advisory locks, finds their
# answers and locks the accounts (store.find_and_lock).

@pytest.fixture
def pg_db(pg_url: str) -> str:
    _truncate(pg_url)
    return pg_url


@pytest.fixture
async def pg_ledger(pg_db: str) -> AsyncIterator[Ledger]:
    pg_url = pg_db
    settings = Settings(database_url=pg_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                        currencies="points:0")
    db = create_engine(pg_url, pool_size=3)
    led = Ledger(db, may_go_negative=settings.may_go_negative, idempotency_ttl_s=3600)
    await led.start()
    yield led
    await led.stop()
    await db.dispose()


def _spy_find_and_lock(monkeypatch: pytest.MonkeyPatch, hide_answers_once: bool = False
                       ) -> list[dict[tuple[str, str], Any]]:
    """Record each call's answers found; with ``hide_answers_once`` the first call that
    finds some reports none, as if they had committed just after its snapshot was taken."""
    calls: list[dict[tuple[str, str], Any]] = []
    hidden: list[bool] = []
    original = store.find_and_lock

    async def spy(*args: Any, **kwargs: Any) -> Any:
        busy, existing, states = await original(*args, **kwargs)
        calls.append(dict(existing))
        if hide_answers_once and existing and not hidden:
            hidden.append(True)
            existing = {}
        return busy, existing, states

    monkeypatch.setattr(store, "find_and_lock", spy)
    return calls


async def test_a_key_another_transaction_holds_is_busy(
        pg_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    await pg_ledger.submit([_spec("world", "user:a", 10)], render=_render("a"))
    calls = _spy_find_and_lock(monkeypatch)
    held = claim("service:t", "held", "credit", {"n": 1})
    async with pg_ledger._db.connect() as other:  # another process's request, in flight
        await other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": held.lock_id})
        with pytest.raises(IdempotencyKeyInUse):
            await pg_ledger.submit([_spec("world", "user:a", 5)], render=_render("x"),
                                   claim=held)
        await other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": held.lock_id})
    assert len(calls) == 1  # refused by the one statement, nothing moved
    assert await _balance(pg_ledger, "user:a") == (10, 0)
    done = await pg_ledger.submit([_spec("world", "user:a", 5)], render=_render("x"),
                                  claim=held)
    assert not done.replayed and len(calls) == 2
    assert await _balance(pg_ledger, "user:a") == (15, 0)


async def test_an_answer_committed_unseen_makes_the_batch_rerun_not_post_twice(
        pg_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    key = claim("service:t", "k1", "credit", {"n": 1})
    first = await pg_ledger.submit([_spec("world", "user:a", 100)], render=_render("first"),
                                   claim=key)
    await pg_ledger.submit([_spec("world", "user:b", 1)], render=_render("b"))
    calls = _spy_find_and_lock(monkeypatch, hide_answers_once=True)
    entered, release = _block_commits(pg_ledger, monkeypatch)
    blocker = asyncio.create_task(pg_ledger.submit([_spec("world", "user:b", 1)],
                                                   render=_render("z")))
    await asyncio.wait_for(entered.wait(), 10)
    retry = asyncio.create_task(pg_ledger.submit(  # the same request again
        [_spec("world", "user:a", 100)], render=_render("again"), claim=key))
    other = asyncio.create_task(pg_ledger.submit(
        [_spec("user:a", "user:b", 10)], render=_render("new"),
        claim=claim("service:t", "k2", "transfer", {"n": 2})))
    await asyncio.sleep(0.05)
    release.set()
    await blocker
    replayed, new = await asyncio.gather(retry, other)

    # The first pass did not see k1's answer: its write collided with the stored one, the
    # batch rolled back whole, and its jobs ran again one by one.
    assert key.ident in calls[1] and len(calls) >= 4
    assert replayed.replayed and replayed.response == first.response
    assert not new.replayed and new.response.body == b'{"tag":"new","n":1}'
    assert await _balance(pg_ledger, "user:a") == (100 - 10, 0)  # credited once
    assert await _balance(pg_ledger, "user:b") == (1 + 1 + 10, 0)


async def test_a_lone_job_whose_answer_committed_unseen_is_refused_then_replays(
        pg_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    key = claim("service:t", "k1", "credit", {"n": 1})
    first = await pg_ledger.submit([_spec("world", "user:a", 100)], render=_render("first"),
                                   claim=key)
    calls = _spy_find_and_lock(monkeypatch, hide_answers_once=True)
    with pytest.raises(ServiceUnavailable):  # 503: retry with the same key
        await pg_ledger.submit([_spec("world", "user:a", 100)], render=_render("again"),
                               claim=key)
    assert await _balance(pg_ledger, "user:a") == (100, 0)  # not credited again
    again = await pg_ledger.submit([_spec("world", "user:a", 100)], render=_render("again"),
                                   claim=key)
    assert again.replayed and again.response == first.response
    assert len(calls) == 2 and key.ident in calls[0] and key.ident in calls[1]
    assert await _balance(pg_ledger, "user:a") == (100, 0)
