"""The outbox hook: a batch's events and its balance monitors' crossings, in order, with and
without side writes that write events of their own (those come first). On PostgreSQL the
events, the notification and the monitors' look-up are one statement
(``repository.append_finding_monitors``); a crossing's event follows them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.events import monitors, repository
from coinpurse.events.service import Outbox, Wakeup, event_write
from coinpurse.ledger.idempotency import StoredResponse
from coinpurse.ledger.model import Outcome, Posting, Transaction, TransactionSpec
from coinpurse.ledger.service import Ledger


def _spec(src: str, dst: str, amount: int) -> TransactionSpec:
    return TransactionSpec(kind="transfer", postings=(Posting(src, dst, amount, "points"),),
                           description="t", reference_id="r", initiator="test")


@pytest.fixture
async def ledger(settings: Settings) -> AsyncIterator[Ledger]:
    db = create_engine(settings.database_url, pool_size=2)
    led = Ledger(db, may_go_negative=settings.may_go_negative, idempotency_ttl_s=3600)
    led.add_hook(Outbox(Wakeup()))
    await led.start()
    yield led
    await led.stop()
    await db.dispose()


async def test_events_and_crossings_in_order(ledger: Ledger) -> None:
    low = await monitors.create(ledger._db, address="user:m", currency="points",
                                condition="below", amount=50, description="low",
                                service=None)
    posted: list[str] = []

    def render(outcomes: list[Outcome]) -> StoredResponse:
        posted.extend(o.id for o in outcomes if isinstance(o, Transaction))
        return StoredResponse(201, b"{}")

    def gift(n: int) -> Any:
        return lambda _outcomes: [event_write("gift.sent", {"n": n})]

    await ledger.submit([_spec("world", "user:m", 100)], render=render)  # 100: not below
    await ledger.submit([_spec("user:m", "world", 60)], render=render)   # 40: crosses
    await ledger.submit([_spec("world", "user:m", 20)], render=render,   # 60: leaves it
                        side_writes=gift(1))
    await ledger.submit([_spec("user:m", "world", 30)], render=render,   # 30: crosses
                        side_writes=gift(2))

    async with ledger._db.connect() as conn:
        found = await repository.read(conn, after=0, limit=100)
    assert [e.type for e in found] == [
        "transaction.posted", "transaction.posted", "balance.threshold_crossed",
        "gift.sent", "transaction.posted", "gift.sent", "transaction.posted",
        "balance.threshold_crossed"]
    assert [e.data["id"] for e in found if e.type == "transaction.posted"] == posted
    crossings = [e.data for e in found if e.type == "balance.threshold_crossed"]
    assert [(c["transaction_id"], c["balance_before"], c["balance_after"])
            for c in crossings] == [(posted[1], 100, 40), (posted[3], 60, 30)]
    assert all(c["monitor"] == monitors.view(low) for c in crossings)
    assert [e.data["n"] for e in found if e.type == "gift.sent"] == [1, 2]
