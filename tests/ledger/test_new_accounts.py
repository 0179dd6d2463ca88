"""PostgreSQL: a batch takes the one-statement way (store.find_and_lock) whenever its
accounts exist, whether or not this process has seen them, and the long way (accounts
created before any lock) only when one is new. Several processes creating the same new
accounts at once must neither deadlock nor lose or double a transfer.

And the committers' own connections plan every statement for its parameters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.ledger import idempotency, store
from coinpurse.ledger.idempotency import StoredResponse, claim
from coinpurse.ledger.model import Outcome, Posting, TransactionSpec
from coinpurse.ledger.service import Ledger
from coinpurse.ledger.tables import accounts, transactions
from coinpurse.state import close_state, open_state
from tests.conftest import _truncate


def _spec(src: str, dst: str, amount: int) -> TransactionSpec:
    return TransactionSpec(kind="transfer", postings=(Posting(src, dst, amount, "points"),),
                           description="t", reference_id="r", initiator="test")


def _render(_o: list[Outcome]) -> StoredResponse:
    return StoredResponse(201, b"{}")


def _overdraft(address: str) -> bool:
    return not address.startswith("user:")


@pytest.fixture
def pg(pg_url: str) -> str:
    _truncate(pg_url)
    return pg_url


@pytest.fixture
async def db(pg: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg, pool_size=4)
    yield engine
    await engine.dispose()


class Ways:
    """Counts the batches that took each way."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.one_statement = 0
        self.long_way = 0
        find_and_lock, try_lock = store.find_and_lock, idempotency.try_lock

        async def counted_find_and_lock(*args: Any, **kwargs: Any) -> Any:
            self.one_statement += 1
            return await find_and_lock(*args, **kwargs)

        async def counted_try_lock(*args: Any, **kwargs: Any) -> Any:
            self.long_way += 1
            return await try_lock(*args, **kwargs)

        monkeypatch.setattr(store, "find_and_lock", counted_find_and_lock)
        monkeypatch.setattr(idempotency, "try_lock", counted_try_lock)


async def test_accounts_this_process_never_saw_take_the_one_statement_way(
        db: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = Ledger(db, may_go_negative=_overdraft, idempotency_ttl_s=3600)
    await earlier.start()
    await earlier.submit([_spec("world", "user:a", 50), _spec("world", "user:b", 50)],
                         render=_render)
    await earlier.stop()

    ways = Ways(monkeypatch)
    fresh = Ledger(db, may_go_negative=_overdraft, idempotency_ttl_s=3600)  # knows nothing
    await fresh.start()
    try:
        result = await fresh.submit([_spec("user:a", "user:b", 20)], render=_render,
                                    claim=claim("service:t", "k1", "transfer", 1))
        assert result.response.status == 201 and not result.replayed
        assert (ways.one_statement, ways.long_way) == (1, 0)

        # A new account: the one statement finds it missing, the batch rolls back and
        # creates it the long way, once.
        result = await fresh.submit([_spec("user:b", "user:new", 5)], render=_render,
                                    claim=claim("service:t", "k2", "transfer", 2))
        assert result.response.status == 201 and not result.replayed
        assert (ways.one_statement, ways.long_way) == (2, 1)
        again = await fresh.submit([_spec("user:b", "user:new", 5)], render=_render,
                                   claim=claim("service:t", "k2", "transfer", 2))
        assert again.replayed and (ways.one_statement, ways.long_way) == (3, 1)
    finally:
        await fresh.stop()
    async with db.connect() as conn:
        balances = {r.address: r.balance for r in await conn.execute(
            select(accounts.c.address, accounts.c.balance))}
        assert await conn.scalar(select(func.count()).select_from(transactions)) == 4  # 2 + 1 + 1
    assert balances["user:a"] == 30 and balances["user:b"] == 65
    assert balances["user:new"] == 5 and sum(balances.values()) == 0


async def test_processes_creating_the_same_new_accounts_at_once(db: AsyncEngine,
                                                                pg: str) -> None:
    """Three ledgers (three processes' worth), each with its own connections, race to pay
    the same 30 new users, in overlapping batches, each job under its own key; then every
    job is sent again to another ledger. Each transfer posts exactly once."""
    ledgers = [Ledger(create_engine(pg, pool_size=1),
                      may_go_negative=_overdraft, idempotency_ttl_s=3600) for _ in range(3)]
    for ledger in ledgers:
        await ledger.start()
    try:
        async def pay(n: int, ledger: Ledger) -> Any:
            users = [f"user:n{(n * 7 + i) % 30}" for i in range(3)]
            ops = [_spec("world", u, 1) for u in users]
            return await ledger.submit(ops, render=_render,
                                       claim=claim("service:t", f"pay{n}", "credit", n))

        async with asyncio.timeout(60):  # a deadlock would stall PostgreSQL's detector
            first = await asyncio.gather(*(pay(n, ledgers[n % 3]) for n in range(150)))
            again = await asyncio.gather(*(pay(n, ledgers[(n + 1) % 3]) for n in range(150)))
    finally:
        for ledger in ledgers:
            await ledger.stop()
            await ledger._db.dispose()
    assert all(r.response.status == 201 and not r.replayed for r in first)
    assert all(r.replayed for r in again)
    async with db.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(transactions)) == 450  # 3 each
        users = await conn.scalar(text(
            "SELECT count(*) FROM accounts WHERE address LIKE 'user:n%'"))
        paid = await conn.scalar(text(
            "SELECT sum(balance) FROM accounts WHERE address LIKE 'user:n%'"))
        total = await conn.scalar(select(func.sum(accounts.c.balance)))
    assert (users, paid, total) == (30, 450, 0)


async def test_the_committers_own_connections_plan_each_statement(settings: Settings) -> None:
    state = await open_state(settings)
    try:
        if settings.is_sqlite:
            assert state.ledger_db is None
            return
        assert state.ledger_db is not None
        async with state.ledger_db.connect() as conn:
            assert await conn.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
        async with state.db.connect() as conn:  # reads keep their cached plans
            assert await conn.scalar(text("SHOW plan_cache_mode")) == "auto"
    finally:
        await close_state(state)
