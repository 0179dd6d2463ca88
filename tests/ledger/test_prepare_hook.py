"""The ledger's ``prepare`` hook and SQL side writes, used by top-ups and withdrawals:
decisions under the batch's locks, seeing the earlier jobs of the same batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.config import Settings
from coinpurse.core.audit import audit_log
from coinpurse.core.db import create_engine
from coinpurse.ledger.idempotency import StoredResponse
from coinpurse.ledger.model import (
    AccountKey,
    AccountState,
    Operation,
    Outcome,
    Posting,
    Rejection,
    Transaction,
    TransactionSpec,
)
from coinpurse.ledger.service import Ledger, RowInserts, SqlWrite
from coinpurse.ledger.tables import accounts


def _spec(src: str, dst: str, amount: int) -> TransactionSpec:
    return TransactionSpec(kind="transfer", postings=(Posting(src, dst, amount, "points"),),
                           description="t", reference_id="r", initiator="test")


def _render(_o: list[Outcome]) -> StoredResponse:
    return StoredResponse(200, b"{}")


@pytest.fixture
async def ledger(settings: Settings) -> AsyncIterator[Ledger]:
    db = create_engine(settings.database_url, pool_size=2)
    led = Ledger(db, may_go_negative=settings.may_go_negative, idempotency_ttl_s=3600,
                 committers=1)
    await led.start()
    yield led
    await led.stop()
    await db.dispose()


async def test_prepare_decides_under_lock_and_sees_the_batch(ledger: Ledger) -> None:
    await ledger.submit([_spec("world", "user:a", 100)], render=_render)
    seen: list[int] = []

    def take_all(tag: int) -> object:
        async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                          pending: Sequence[RowInserts]) -> Sequence[Operation] | Rejection:
            available = states[("user:a", "points")].available
            earlier = sum(len(rows) for table, rows in pending if table is audit_log)
            seen.append(earlier)
            if available == 0:
                return Rejection("insufficient_funds", "nothing left")
            return [_spec("user:a", f"user:b{tag}", available)]
        return prepare

    def note(tag: int) -> object:
        def writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
            if not isinstance(outcomes[0], Transaction):
                return []
            return [(audit_log, [{"at": datetime.now(UTC), "actor": f"t{tag}",
                                  "action": "test", "details_json": "{}"}])]
        return writes

    # Declared amount 1; prepare takes what is available. Submitted together: one batch.
    results = await asyncio.gather(*[
        ledger.submit([_spec("user:a", f"user:b{i}", 1)], render=_render,
                      prepare=take_all(i), side_writes=note(i))  # type: ignore[arg-type]
        for i in range(3)])
    outcomes = [r.outcomes[0] for r in results if r.outcomes]
    posted = [o for o in outcomes if isinstance(o, Transaction)]
    assert len(posted) == 1 and posted[0].spec.postings[0].amount == 100
    assert [o.code for o in outcomes if isinstance(o, Rejection)] == ["insufficient_funds"] * 2
    assert sorted(seen) == [0, 1, 1]  # the later jobs saw the first one's pending row


async def test_sql_writes_commit_with_the_money_and_extra_locks(ledger: Ledger,
                                                                settings: Settings) -> None:
    await ledger.submit([_spec("world", "user:a", 10)], render=_render)

    async def mark(conn: AsyncConnection) -> None:
        await conn.execute(update(accounts).where(accounts.c.address == "user:c")
                           .values(overdraft=False))

    async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> Sequence[Operation] | Rejection:
        assert ("user:c", "points") in states  # locked because it was declared
        return [_spec("user:a", "user:c", 10)]

    await ledger.submit([_spec("user:a", "user:b", 1)], render=_render, prepare=prepare,
                        lock_keys=frozenset({("user:c", "points")}),
                        side_writes=lambda _o: [mark])
    db = create_engine(settings.database_url, pool_size=1)
    try:
        async with db.connect() as conn:
            rows = dict((await conn.execute(select(accounts.c.address, accounts.c.balance)
                                            .where(accounts.c.currency == "points"))).all())
    finally:
        await db.dispose()
    assert rows["user:c"] == 10 and rows["user:a"] == 0 and rows.get("user:b", 0) == 0
