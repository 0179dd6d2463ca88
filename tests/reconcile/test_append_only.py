"""The ledger's tables are append-only: the triggers refuse UPDATE, DELETE (and TRUNCATE on
PostgreSQL) whoever asks; and the documented least-privilege roles run Coinpurse."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.partitions.service import ensure, month_of, partition_name
from tests.conftest import Server
from tests.pgserver import find_bindir
from tests.reconcile.conftest import Book, query, seal

DOCS = Path(__file__).resolve().parents[2] / "docs" / "postgres"
REFUSED = (
    "UPDATE entries SET amount = amount + 1",
    "DELETE FROM entries",
    "UPDATE transactions SET description = 'edited'",
    "DELETE FROM transactions",
    "UPDATE ledger_seals SET hash = 'x'",
    "DELETE FROM ledger_seals",
)


async def _refused(url: str, sql: str) -> str:
    engine = create_engine(url, pool_size=1)
    try:
        with pytest.raises(DBAPIError) as refused:
            async with engine.begin() as conn:
                await conn.execute(text(sql))
        return str(refused.value)
    finally:
        await engine.dispose()


async def test_the_ledger_refuses_edits(book: Book, settings: Settings) -> None:
    await seal(settings)
    url = settings.database_url
    before = await query(url, "SELECT id, amount, balance_after FROM entries ORDER BY id")
    statements = list(REFUSED)
    if url.startswith("postgresql"):
        statements += ["TRUNCATE entries", "TRUNCATE transactions CASCADE",
                       "TRUNCATE ledger_seals", "TRUNCATE accounts CASCADE"]
    for sql in statements:
        message = await _refused(url, sql)
        assert "append-only" in message, (sql, message)
    assert await query(url, "SELECT id, amount, balance_after FROM entries ORDER BY id") == before
    counts = await query(url, "SELECT (SELECT COUNT(*) FROM transactions) AS n_tx, "
                              "(SELECT COUNT(*) FROM ledger_seals) AS n_seals")
    assert (counts[0].n_tx, counts[0].n_seals) == (5, 5)


def _psql(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(find_bindir() / "psql"), url, "-v", "ON_ERROR_STOP=1", "-q",
                           *args], capture_output=True, text=True, timeout=60)


def _as(url: str, user: str, database: str) -> str:
    return make_url(url).set(username=user, password=None, database=database) \
        .render_as_string(hide_password=False)


def test_least_privilege_roles(pg_url: str, tmp_path: Path) -> None:
    """docs/postgres: the migration role owns the schema; the API's role runs Coinpurse but
    cannot change the ledger, the schema or the triggers; the owner cannot change the
    ledger either (the triggers)."""
    roles_sql = tmp_path / "roles.sql"
    roles_sql.write_text((DOCS / "roles.sql").read_text().replace(
        "DATABASE coinpurse ", "DATABASE coinpurse_roles "))
    done = _psql(pg_url, "-f", str(roles_sql))
    assert done.returncode == 0, done.stderr
    owner = _as(pg_url, "coinpurse_owner", "coinpurse_roles")
    app = _as(pg_url, "coinpurse_app", "coinpurse_roles")
    server = None
    try:
        env = {**os.environ, "COINPURSE_DATABASE_URL": owner}
        migrated = subprocess.run([sys.executable, "-m", "coinpurse", "migrate"], env=env,
                                  capture_output=True, text=True, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        granted = _psql(owner, "-f", str(DOCS / "grants.sql"))
        assert granted.returncode == 0, granted.stderr
        keyed = subprocess.run([sys.executable, "-m", "coinpurse", "keys", "create",
                                "--service", "games", "--scopes", "*", "--json"],
                               env={**env, "COINPURSE_DATABASE_URL": app},
                               capture_output=True, text=True, timeout=60)
        assert keyed.returncode == 0, keyed.stderr
        key = json.loads(keyed.stdout)["key"]
        server = Server(app, extra_env={"COINPURSE_SEAL_INTERVAL_S": "0.2"})
        r = httpx.post(f"{server.base_url}/internal/v1/wallet/credit", headers={
            "X-API-Key": key, "Idempotency-Key": "k1"}, json={
            "user_id": "alice", "currency": "points", "amount": 5, "description": "Hi",
            "reference_id": "r1"}, timeout=10)
        assert r.status_code == 201, r.text
        checked = subprocess.run([sys.executable, "-m", "coinpurse", "reconcile", "--json"],
                                 env={**env, "COINPURSE_DATABASE_URL": app},
                                 capture_output=True, text=True, timeout=120)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert json.loads(checked.stdout)["counts"]["transactions"] == 1

        for sql, words in (("UPDATE entries SET amount = 6", "permission denied"),
                           ("DELETE FROM transactions", "permission denied"),
                           ("TRUNCATE entries", "permission denied"),
                           ("ALTER TABLE entries DISABLE TRIGGER ALL", "must be owner"),
                           ("DROP TRIGGER entries_append_only ON entries", "must be owner"),
                           ("SET session_replication_role = replica", "permission denied"),
                           ("CREATE TABLE x (id int)", "permission denied"),
                           ("UPDATE alembic_version SET version_num = 'x'",
                            "permission denied")):
            refused = _psql(app, "-c", sql)
            assert refused.returncode != 0 and words in refused.stderr, (sql, refused.stderr)
        for sql in ("UPDATE entries SET amount = 6", "DELETE FROM ledger_seals",
                    "TRUNCATE entries"):
            refused = _psql(owner, "-c", sql)
            assert refused.returncode != 0 and "append-only" in refused.stderr, sql
        # A month of the partitioned tables, reached directly rather than through its parent.
        month = partition_name("entries", month_of(datetime.now(UTC)))
        for sql in (f"UPDATE {month} SET amount = 6", f"DELETE FROM {month}",
                    f"TRUNCATE {month}", "DELETE FROM archived_entry_totals"):
            refused = _psql(app, "-c", sql)
            assert refused.returncode != 0 and "permission denied" in refused.stderr, \
                (sql, refused.stderr)
        for sql in (f"UPDATE {month} SET amount = 6", f"TRUNCATE {month}"):
            refused = _psql(owner, "-c", sql)
            assert refused.returncode != 0 and "append-only" in refused.stderr, \
                (sql, refused.stderr)
        rows = asyncio.run(query(app, "SELECT amount FROM entries ORDER BY id"))
        assert [r.amount for r in rows] == [-5, 5]
    finally:
        if server is not None:
            server.stop()
        _psql(pg_url, "-c", "DROP DATABASE IF EXISTS coinpurse_roles WITH (FORCE)")
        _psql(pg_url, "-c", "DROP ROLE IF EXISTS coinpurse_app")
        _psql(pg_url, "-c", "DROP ROLE IF EXISTS coinpurse_owner")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_every_month_is_append_only(book: Book, settings: Settings) -> None:
    """PostgreSQL: the history tables are partitioned by month; the triggers on the parent
    reach this month's partition (with the book's rows) and a month the partitions job
    makes later (its row triggers cloned, its TRUNCATE trigger copied)."""
    url = settings.database_url
    later = datetime.now(UTC) + timedelta(days=100)
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            made = await ensure(conn, now=later)
    finally:
        await engine.dispose()
    this = month_of(datetime.now(UTC))
    for table, column in (("entries", "amount = amount + 1"),
                          ("transactions", "description = 'x'")):
        month = partition_name(table, this)
        for sql in (f"UPDATE {month} SET {column}", f"DELETE FROM {month}",
                    f"TRUNCATE {month} CASCADE"):
            message = await _refused(url, sql)
            assert "append-only" in message, (sql, message)
        future = partition_name(table, month_of(later))
        assert future in made
        message = await _refused(url, f"TRUNCATE {future}")
        assert "append-only" in message, message
        triggers = await query(url, "SELECT tgname FROM pg_trigger WHERE tgrelid = "
                                    "CAST(:t AS regclass) AND NOT tgisinternal ORDER BY tgname",
                               {"t": future})
        assert [t.tgname for t in triggers] == [f"{table}_append_only", f"{table}_no_truncate"]
    rows = await query(url, f"SELECT COUNT(*) AS n FROM {partition_name('entries', this)}")
    assert rows[0].n == 10
