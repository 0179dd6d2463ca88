"""Jobs of one ledger batch that touch the same user's bonuses: each sees what the earlier
ones decided (rows not written yet), made deterministic by holding the committer busy while
the jobs queue, so the next batch takes them all at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.config import Settings
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
from tests.bonuses.conftest import (
    ADMIN,
    activity,
    check,
    debit,
    fund,
    granted,
    promotion,
    rows,
    wallet,
)
from tests.conftest import MakeKey


@asynccontextmanager
async def _committer_held(ledger: Ledger) -> AsyncIterator[asyncio.Event]:
    entered, release = asyncio.Event(), asyncio.Event()

    async def prepare(_c: AsyncConnection, _s: Mapping[AccountKey, AccountState],
                      _p: Sequence[RowInserts]) -> Sequence[Operation] | Rejection:
        entered.set()
        await release.wait()
        return []

    def render(_o: list[Outcome]) -> StoredResponse:
        return StoredResponse(200, b"{}")

    spec = TransactionSpec(kind="test", postings=(Posting("world", "user:z", 1, "coins"),),
                           description="hold", reference_id="hold", initiator="test")
    blocker = asyncio.create_task(ledger.submit([spec], render=render, prepare=prepare))
    await entered.wait()
    try:
        yield release
    finally:
        release.set()
        await blocker


async def _in_one_batch(app: Any, calls: list[Any]) -> list[httpx.Response]:
    ledger: Ledger = app.state.coinpurse.ledger
    before = ledger.batches_committed
    async with _committer_held(ledger) as release:
        tasks = [asyncio.create_task(c) for c in calls]
        for _ in range(500):
            if ledger.queue_depth >= len(calls):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"{ledger.queue_depth} jobs queued, not {len(calls)}")
        release.set()
        answers = list(await asyncio.gather(*tasks))
    assert ledger.batches_committed - before == 2  # the held one, then all of them
    return answers


async def test_one_batch_wagers_spends_and_converts_once(
        client: httpx.AsyncClient, app: Any, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    url = settings.database_url
    promo = await promotion(client, amount=100, wagering_multiplier=3, per_user_limit=None)
    first = await granted(client, key, "b", promo["code"])  # 300 to wager
    second = await granted(client, key, "b", promo["code"])  # then 300 more
    await fund(client, key, "b", 50)
    # 8 reports of 50 (400: the first bonus converts, the second gets 100), and debits
    # of 40 each spending cash (50), then bonus, in the same batch.
    calls = [activity(client, key, "b", 50, reference_id=f"x{i}") for i in range(8)]
    calls += [debit(client, key, "b", 40) for _ in range(4)]
    answers = await _in_one_batch(app, calls)
    assert [r.status_code for r in answers] == [200] * 8 + [201] * 4, [r.text for r in answers]
    conversions = [c for r in answers[:8] for c in r.json()["conversions"]]
    assert len(conversions) == 1 and conversions[0]["bonus_id"] == first["id"]
    spent = [(r.json()["from_cash"], r.json()["from_bonus"]) for r in answers[8:]]
    assert sum(c for c, _ in spent) + sum(b for _, b in spent) == 160
    listed = await client.get("/admin/v1/bonuses?user_id=b", headers=ADMIN)
    found = {b["id"]: b for b in listed.json()["data"]}
    assert found[first["id"]]["status"] == "completed"
    assert found[second["id"]]["progress"]["wagered"] == 100
    # Cash: 50 + what converted - what the debits took from cash; bonus: the rest.
    got = await wallet(client, "b")
    assert got["balance"] + got["bonus"] == 50 + 200 - 160 - conversions[0]["forfeited"]
    assert len(await rows(url, "SELECT id FROM transactions WHERE kind = 'bonus_conversion'")
               ) == 1
    await check(url)
