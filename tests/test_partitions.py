"""Monthly partitions of the history tables on PostgreSQL (coinpurse.partitions): created
ahead, written through, detached for archiving with the books still balancing, the history
query still on its indexes, and triggers on the parents (the integrity work's append-only
triggers) kept on every month. SQLite keeps plain tables."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.core.db import create_engine, migrate
from coinpurse.ledger import check as reconcile
from coinpurse.ledger import queries
from coinpurse.ledger.idempotency import StoredResponse, claim
from coinpurse.ledger.model import Outcome, Posting, TransactionSpec
from coinpurse.ledger.service import Ledger
from coinpurse.partitions import repository as repo
from coinpurse.partitions import service as p
from tests.invariants import assert_invariants, ledger_state_async
from tests.test_cli import run

OLD = date(2025, 1, 1)


@pytest.fixture
def empty_pg(pg_url: str) -> Iterator[str]:
    """A database of its own, not migrated: the tests detach partitions, add triggers."""
    name = f"part_{uuid.uuid4().hex[:8]}"
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"

    async def ddl(sql: str) -> None:
        db = create_engine(admin, pool_size=1)
        async with db.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
        await db.dispose()

    asyncio.run(ddl(f"CREATE DATABASE {name}"))
    yield pg_url.rsplit("/", 1)[0] + "/" + name
    asyncio.run(ddl(f"DROP DATABASE {name} WITH (FORCE)"))


@pytest.fixture
def fresh_pg(empty_pg: str) -> str:
    asyncio.run(migrate(empty_pg))
    return empty_pg


async def _upgrade(url: str, revision: str) -> None:
    """Migrate to ``revision`` (not the head), as an older Coinpurse would have."""
    from alembic import command

    from coinpurse.core.db import _alembic_config

    def upgrade(sync_conn: Any) -> None:
        cfg = _alembic_config(url)
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade)
    finally:
        await engine.dispose()


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
    this = p.month_of(datetime.now(UTC))
    async with db.begin() as conn:
        for table in p.HISTORY_TABLES:
            assert await p.is_partitioned(conn, table)
            months = [x.month for x in await repo.attached(conn, table)]
            assert months == [p.add_months(this, n) for n in range(p.AHEAD_MONTHS + 1)]
        assert await p.ahead(conn) == p.AHEAD_MONTHS
        pk = (await conn.execute(text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'pk_transactions'"))).scalar_one()
        assert pk == "PRIMARY KEY (id, created_at)"
        # the worker, a year on: the missing months appear, idempotently
        later = datetime(this.year + 1, this.month, 15, tzinfo=UTC)
        created = await p.ensure(conn, now=later)
        assert p.partition_name("entries", p.month_of(later)) in created
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
            for statement in repo.partition_sql(table, OLD):
                await conn.execute(text(statement))
    await _old_transfer(db, "alice", 70, datetime(2025, 1, 20, tzinfo=UTC))
    await _old_transfer(db, "bob", 5, datetime(2025, 1, 21, tzinfo=UTC))
    await _credit(db, "alice", 30)
    async with db.connect() as conn:
        assert (await reconcile.check(conn)).ok
    with pytest.raises(ValueError, match="before the current one"):
        async with db.begin() as conn:
            await p.detach_before(conn, p.add_months(p.month_of(datetime.now(UTC)), 1))
    async with db.begin() as conn:
        detached = await p.detach_before(conn, date(2025, 2, 1))
    assert detached == ["transactions_y2025m01", "entries_y2025m01", "events_y2025m01"]
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
            for statement in repo.partition_sql(table, OLD):
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
    this = p.month_of(datetime.now(UTC))
    async with db.begin() as conn:
        for table in p.HISTORY_TABLES:
            for n in (1, 2):
                for statement in repo.partition_sql(table, p.add_months(this, -n)):
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
        "transactions", "entries", "events"}
    ensured = run(fresh_pg, "partitions", "ensure", "--ahead", "5")
    assert ensured.returncode == 0 and "entries_y" in ensured.stdout
    assert json.loads(run(fresh_pg, "partitions", "list", "--json").stdout)["months_ahead"] == 5
    bad = run(fresh_pg, "partitions", "detach", "--before", "2025-13")
    assert bad.returncode == 2 and "not a month" in bad.stderr
    none = run(fresh_pg, "partitions", "detach", "--before", "2025-01")
    assert none.returncode == 0 and "nothing before" in none.stdout


# Triggers made before migration 0113, as another domain's migration could have (the
# integrity work's own append-only triggers come after it, in 0115_reconcile).
APPEND_ONLY = """
CREATE OR REPLACE FUNCTION test_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% of % refused: append-only', TG_OP, TG_TABLE_NAME; END $$;
"""


async def _append_only(conn: Any, table: str) -> None:
    await conn.exec_driver_sql(
        f"CREATE TRIGGER {table}_earlier_rows BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION test_append_only()")
    await conn.exec_driver_sql(
        f"CREATE TRIGGER {table}_earlier_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION test_append_only()")


async def _refused(db: AsyncEngine, sql: str) -> bool:
    try:
        async with db.begin() as conn:
            await conn.exec_driver_sql(sql)
    except Exception as exc:
        assert "append-only" in str(exc), exc
        return True
    return False


async def test_append_only_triggers_on_the_parents_hold_for_every_month(
        db: AsyncEngine) -> None:
    """The append-only triggers of migration 0115_reconcile, on the parents: row triggers
    reach each month (cloned on ATTACH); statement triggers are copied to each month, new
    or existing (PostgreSQL does not clone them); a detached month keeps both until it is
    dropped."""
    async with db.begin() as conn:
        await p.ensure(conn)  # the job (or `coinpurse migrate`): existing months get them too
        await repo.create(conn, "transactions", OLD)
        await repo.create(conn, "entries", OLD)
        await repo.create(conn, "events", OLD)
    await _old_transfer(db, "alice", 70, datetime(2025, 1, 20, tzinfo=UTC))
    await _credit(db, "alice", 5)  # this month's partition, made by the migration
    old = repo.partition_name("entries", OLD)
    this = repo.partition_name("entries", p.month_of(datetime.now(UTC)))
    for table in (old, this, "entries"):
        assert await _refused(db, f"UPDATE {table} SET amount = amount + 1")
        assert await _refused(db, f"DELETE FROM {table}")
        assert await _refused(db, f"TRUNCATE {table}")
    async with db.begin() as conn:
        assert old in await p.detach_before(conn, date(2025, 2, 1))
    assert await _refused(db, f"DELETE FROM {old}")  # the archive stays as it was
    assert await _refused(db, f"TRUNCATE {old}")
    async with db.begin() as conn:
        await conn.exec_driver_sql(f"DROP TABLE {old}")  # archived (pg_dump -t), then gone
    async with db.connect() as conn:
        report = await reconcile.check(conn)
    assert report.ok, report.problems


async def test_the_partitioning_keeps_earlier_triggers_and_drops_the_references(
        empty_pg: str) -> None:
    """Triggers made before migration 0113 (if the integrity work's migration runs first)
    are carried over to the partitioned tables, rows too; every foreign key to
    transactions is dropped (PostgreSQL cannot reference a partitioned id alone)."""
    await _upgrade(empty_pg, "0112_shop")
    db = create_engine(empty_pg, pool_size=1)
    try:
        async with db.begin() as conn:
            referencing = sorted((await conn.execute(text(
                "SELECT conrelid::regclass::text || '.' || a.attname FROM pg_constraint c "
                "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
                "WHERE c.contype = 'f' AND c.confrelid = 'transactions'::regclass"))
                                  ).scalars().all())
            await conn.exec_driver_sql(APPEND_ONLY)
            await _append_only(conn, "transactions")
        assert referencing == ["adjustments.transaction_id", "entries.transaction_id",
                               "gifts.transaction_id", "holds.transaction_id",
                               "order_refunds.transaction_id", "orders.transaction_id",
                               "reversals.original_id", "reversals.reversal_id"]
        await _credit(db, "alice", 5)
        await db.dispose()
        await migrate(empty_pg)
        async with db.begin() as conn:
            assert await p.is_partitioned(conn, "transactions")
            left = (await conn.execute(text(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid IN "
                "('transactions'::regclass, 'entries'::regclass, 'events'::regclass)"))
                    ).scalar_one()
            assert left == 0
            assert (await conn.execute(text(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND "
                "conrelid = 'entries'::regclass AND confrelid = 'accounts'::regclass"))
                    ).scalar_one() == 1
            indexes = set((await conn.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'entries'"))
                           ).scalars().all())
            assert {"pk_entries", "ix_entries_account_id_id",
                    "ix_entries_transaction_id"} <= indexes
        this = repo.partition_name("transactions", p.month_of(datetime.now(UTC)))
        assert await _refused(db, f"UPDATE {this} SET description = 'edited'")
        assert await _refused(db, "TRUNCATE transactions")
        assert await _refused(db, f"TRUNCATE {this}")
        async with db.connect() as conn:
            assert (await reconcile.check(conn)).ok
        async with db.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM transactions"))
                    ).scalar_one() == 1
    finally:
        await db.dispose()


async def test_events_are_partitioned_by_month_and_read_in_order(db: AsyncEngine) -> None:
    from coinpurse.events import repository as events

    now = datetime.now(UTC)
    async with db.begin() as conn:
        await events.append(conn, [events.NewEvent("test.one", {"n": 1}),
                                   events.NewEvent("test.two", {"n": 2})], now)
    async with db.connect() as conn:
        where = set((await conn.execute(text(
            "SELECT tableoid::regclass::text FROM events"))).scalars().all())
        found = await events.read(conn, after=0, limit=10)
    assert where == {repo.partition_name("events", p.month_of(now))}
    assert [(e.type, e.data) for e in found] == [("test.one", {"n": 1}),
                                                 ("test.two", {"n": 2})]


async def test_the_job_says_when_its_role_may_not_make_partitions(db: AsyncEngine,
                                                                  fresh_pg: str) -> None:
    """Least privilege (the service's role owns no table): the job fails with a message
    that says who must make the months, and makes nothing."""
    role = f"app_{uuid.uuid4().hex[:8]}"
    async with db.begin() as conn:
        await conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        await conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {role}")
        await conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    later = datetime.now(UTC).replace(day=1) + timedelta(days=400)
    app_url = make_url(fresh_pg).set(username=role, password=None)
    as_app = create_engine(app_url.render_as_string(hide_password=False), pool_size=1)
    try:
        with pytest.raises(p.NotOwner, match="as their owner"):
            await p.maintain(as_app, now=later)
    finally:
        await as_app.dispose()
        async with db.begin() as conn:
            await conn.exec_driver_sql(f"DROP OWNED BY {role}")
            await conn.exec_driver_sql(f"DROP ROLE {role}")
    assert await p.maintain(db, now=later) != []  # the owner can
