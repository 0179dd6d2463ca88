"""Monthly partitions of the history tables on PostgreSQL (coinpurse.partitions): created
ahead, written through, detached for archiving with the books still balancing, and the
history query still on its indexes. SQLite keeps plain tables."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse import partitions as p
from coinpurse import reconcile
from coinpurse.db import create_engine, migrate
from coinpurse.idempotency import StoredResponse, claim
from coinpurse.ledger import queries
from coinpurse.ledger.model import Outcome, Posting, TransactionSpec
from coinpurse.ledger.service import Ledger
from tests.invariants import assert_invariants, ledger_state_async
from tests.test_cli import run

OLD = date(2025, 1, 1)


@pytest.fixture
def fresh_pg(pg_url: str) -> Iterator[str]:
    """A database of its own: the test detaches partitions."""
    name = f"part_{uuid.uuid4().hex[:8]}"
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"

    async def ddl(sql: str) -> None:
        db = create_engine(admin, pool_size=1)
        async with db.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
        await db.dispose()

    asyncio.run(ddl(f"CREATE DATABASE {name}"))
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    asyncio.run(migrate(url))
    yield url
    asyncio.run(ddl(f"DROP DATABASE {name} WITH (FORCE)"))


@pytest.fixture
async def db(fresh_pg: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_pg, pool_size=2)
    yield engine
    await engine.dispose()


def _render(_o: list[Outcome]) -> StoredResponse:
    return StoredResponse(201, b"{}")


async def _credit(db: AsyncEngine, user: str, amount: int) -> None:
    ledger = Ledger(db, may_go_negative=lambda a: not a.startswith("user:"),
                    idempotency_ttl_s=3600)
    await ledger.start()
    try:
        spec = TransactionSpec(kind="credit", postings=(
            Posting("service:t", f"user:{user}", amount, "points"),), description="c",
            reference_id="r", initiator="service:t", service="t")
        await ledger.submit([spec], render=_render,
                            claim=claim("service:t", uuid.uuid4().hex, "c", 1))
    finally:
        await ledger.stop()


async def _old_transfer(db: AsyncEngine, user: str, amount: int, when: datetime) -> None:
    """A transfer service:t -> user dated ``when`` (an old month), written as the ledger
    writes one: the transaction, two entries, the balances."""
    async with db.begin() as conn:
        ids = {}
        for address in ("service:t", f"user:{user}"):
            ids[address] = (await conn.execute(text(
                "INSERT INTO accounts (address, currency, balance, held, overdraft, "
                "created_at, updated_at) VALUES (:a, 'points', 0, 0, :o, :w, :w) "
                "ON CONFLICT (address, currency) DO UPDATE SET updated_at = accounts.updated_at "
                "RETURNING id"), {"a": address, "o": address == "service:t", "w": when}
            )).scalar_one()
        tx = str(uuid.uuid4())
        await conn.execute(text(
            "INSERT INTO transactions (id, kind, description, reference_id, metadata_json, "
            "postings_json, initiator, service, created_at) VALUES (:id, 'credit', 'old', "
            "'old', '{}', :p, 'service:t', 't', :w)"),
            {"id": tx, "w": when, "p": orjson.dumps([{"source": "service:t", "destination":
                                                      f"user:{user}", "amount": amount,
                                                      "currency": "points"}]).decode()})
        for address, sign in (("service:t", -1), (f"user:{user}", 1)):
            balance = (await conn.execute(text(
                "UPDATE accounts SET balance = balance + :d WHERE id = :i RETURNING balance"),
                {"d": sign * amount, "i": ids[address]})).scalar_one()
            await conn.execute(text(
                "INSERT INTO entries (transaction_id, account_id, posting_index, amount, "
                "balance_after, created_at) VALUES (:t, :a, 0, :m, :b, :w)"),
                {"t": tx, "a": ids[address], "m": sign * amount, "b": balance, "w": when})


async def test_history_tables_are_monthly_partitions_created_ahead(db: AsyncEngine) -> None:
    this = p.month_start(datetime.now(UTC))
    async with db.begin() as conn:
        for table in p.HISTORY_TABLES:
            assert await p.is_partitioned(conn, table)
            months = [x.month for x in await p.partitions(conn, table)]
            assert months == [p.add_months(this, n) for n in range(p.AHEAD_MONTHS + 1)]
        assert await p.ahead(conn) == p.AHEAD_MONTHS
        pk = (await conn.execute(text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'pk_transactions'"))).scalar_one()
        assert pk == "PRIMARY KEY (id, created_at)"
        # the worker, a year on: the missing months appear, idempotently
        later = datetime(this.year + 1, this.month, 15, tzinfo=UTC)
        created = await p.ensure(conn, now=later)
        assert p.partition_name("entries", p.month_start(later)) in created
        assert await p.ensure(conn, now=later) == []
    await _credit(db, "alice", 10)
    async with db.connect() as conn:
        where = (await conn.execute(text(
            "SELECT tableoid::regclass::text FROM transactions"))).scalars().all()
    assert where == [p.partition_name("transactions", this)]


async def test_detached_months_leave_the_books_balanced(db: AsyncEngine,
                                                        fresh_pg: str) -> None:
    async with db.begin() as conn:
        for table in p.HISTORY_TABLES:  # as if the ledger had run since then
            for statement in p.partition_sql(table, OLD):
                await conn.execute(text(statement))
    await _old_transfer(db, "alice", 70, datetime(2025, 1, 20, tzinfo=UTC))
    await _old_transfer(db, "bob", 5, datetime(2025, 1, 21, tzinfo=UTC))
    await _credit(db, "alice", 30)
    async with db.connect() as conn:
        assert (await reconcile.check(conn)).ok
    with pytest.raises(ValueError, match="before the current one"):
        async with db.begin() as conn:
            await p.detach_before(conn, p.add_months(p.month_start(datetime.now(UTC)), 1))
    async with db.begin() as conn:
        detached = await p.detach_before(conn, date(2025, 2, 1))
    assert detached == ["transactions_y2025m01", "entries_y2025m01"]
    async with db.connect() as conn:
        report = await reconcile.check(conn)
        assert report.ok, report.problems
        assert report.entries == 2  # the current month's credit only
        archived = (await conn.execute(text(
            "SELECT count(*), sum(total), sum(entries) FROM archived_entry_totals"))).one()
        assert tuple(archived) == (3, 0, 4)  # alice, bob, service:t; +70 +5 -75
        still_there = (await conn.execute(text(
            "SELECT count(*) FROM entries_y2025m01"))).scalar_one()
        assert still_there == 4  # a plain table now, for pg_dump and DROP
        rows, _ = await queries.entries_page(conn, "user:alice", currency=None,
                                             before_id=None, limit=10)
        assert [r.amount for r in rows] == [30]
    state = await ledger_state_async(fresh_pg)
    assert_invariants(state)


async def test_a_broken_archive_is_caught_by_check(db: AsyncEngine) -> None:
    """The check's new term can fail: a lost archived total shows as a mismatch."""
    async with db.begin() as conn:
        for table in p.HISTORY_TABLES:
            for statement in p.partition_sql(table, OLD):
                await conn.execute(text(statement))
    await _old_transfer(db, "alice", 70, datetime(2025, 1, 20, tzinfo=UTC))
    async with db.begin() as conn:
        await p.detach_before(conn, date(2025, 2, 1))
        await conn.execute(text("DELETE FROM archived_entry_totals"))
    async with db.connect() as conn:
        report = await reconcile.check(conn)
    assert "balance_not_sum_of_entries" in report.problems


async def test_history_query_uses_its_indexes(db: AsyncEngine) -> None:
    """Three months of 60,000 entries: the page is index scans on entries (newest first,
    merged across months) and, per row, one index probe in its own month of transactions."""
    this = p.month_start(datetime.now(UTC))
    async with db.begin() as conn:
        for table in p.HISTORY_TABLES:
            for n in (1, 2):
                for statement in p.partition_sql(table, p.add_months(this, -n)):
                    await conn.execute(text(statement))
        await conn.execute(text(
            "INSERT INTO accounts (address, currency, created_at, updated_at, overdraft) "
            "SELECT 'user:' || i, 'points', now(), now(), false "
            "FROM generate_series(1, 2000) i"))
        await conn.execute(text(
            "INSERT INTO transactions (id, kind, description, reference_id, metadata_json, "
            "postings_json, initiator, created_at) SELECT gen_random_uuid()::text, 'credit', "
            "'x', 'x', '{}', '[]', 'service:t', date_trunc('month', now()) + "
            "((i % 75) - 50) * interval '1 day' + interval '1 hour' "
            "FROM generate_series(1, 60000) i"))
        await conn.execute(text(
            "INSERT INTO entries (transaction_id, account_id, posting_index, amount, "
            "balance_after, created_at) SELECT t.id, (SELECT min(id) FROM accounts) + "
            "(abs(hashtext(t.id)) % 2000), 0, 1, 1, t.created_at FROM transactions t"))
        await conn.execute(text("ANALYZE"))
        seen: list[tuple[str, Any]] = []

        def record(_c: Any, _cur: Any, statement: str, params: Any, *_a: Any) -> None:
            seen.append((statement, params))

        event.listen(conn.sync_connection, "before_cursor_execute", record)  # type: ignore[arg-type]
        await queries.entries_page(conn, "user:7", currency=None, before_id=None, limit=50)
        event.remove(conn.sync_connection, "before_cursor_execute", record)  # type: ignore[arg-type]
        statement, params = seen[-1]
        plan = (await conn.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + statement, params)).scalar_one()
        filled = set((await conn.execute(text(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND reltuples > 0 AND relname ~ "
            "'^(entries|transactions)_y'"))).scalars().all())
    assert len(filled) == 6  # three months of each table
    plan_text = json.dumps(plan)
    nodes = _nodes(plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"])
    scans = [(n["Node Type"], n.get("Relation Name", "")) for n in nodes]
    # (the empty months ahead may be "scanned": they hold nothing)
    assert not any(t == "Seq Scan" and r in filled for t, r in scans), plan_text
    indexed = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
    assert any(t in indexed and r.startswith("entries_y") for t, r in scans), plan_text
    assert any(t in indexed and r.startswith("transactions_y") for t, r in scans), plan_text


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node]
    for child in node.get("Plans", []):
        found += _nodes(child)
    return found


def test_sqlite_keeps_plain_tables(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    assert run(url, "migrate").returncode == 0
    listed = run(url, "partitions", "list")
    assert listed.returncode == 0 and "not partitioned" in listed.stdout


def test_partitions_cli(fresh_pg: str) -> None:
    listed = run(fresh_pg, "partitions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert found["months_ahead"] == p.AHEAD_MONTHS and set(found["tables"]) == {
        "transactions", "entries"}
    ensured = run(fresh_pg, "partitions", "ensure", "--ahead", "5")
    assert ensured.returncode == 0 and "entries_y" in ensured.stdout
    assert json.loads(run(fresh_pg, "partitions", "list", "--json").stdout)["months_ahead"] == 5
    bad = run(fresh_pg, "partitions", "detach", "--before", "2025-13")
    assert bad.returncode == 2 and "not a month" in bad.stderr
    none = run(fresh_pg, "partitions", "detach", "--before", "2025-01")
    assert none.returncode == 0 and "nothing before" in none.stdout
