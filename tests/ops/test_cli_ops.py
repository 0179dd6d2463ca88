"""The operator's commands: migrate --status/--sql, keys rotate, export, config check, and
--json everywhere."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_JWT_SECRET, MakeKey
from tests.test_cli import run


def test_migrate_status_and_sql(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    status = run(url, "migrate", "--status", "--json")
    assert status.returncode == 1, status.stderr  # pending migrations
    found = json.loads(status.stdout)
    assert found["current"] is None and found["head"] == found["pending"][-1]["revision"]
    assert found["pending"][0] == {"revision": "0001", "description": "initial schema"}
    assert not (tmp_path / "new.db").exists(), "looking must not create the database"
    sql = run(url, "migrate", "--sql")
    assert sql.returncode == 0, sql.stderr
    assert "CREATE TABLE accounts" in sql.stdout and "CREATE TABLE alembic_version" in \
        sql.stdout
    assert not (tmp_path / "new.db").exists(), "--sql must not touch the database"
    migrated = run(url, "migrate", "--json")
    assert migrated.returncode == 0 and json.loads(migrated.stdout)["migrated"] is True
    done = run(url, "migrate", "--status")
    assert done.returncode == 0 and "up to date" in done.stdout


def test_migrate_sql_on_postgresql_from_a_revision(pg_url: str) -> None:
    found = run(pg_url, "migrate", "--status", "--json")
    assert found.returncode == 0 and json.loads(found.stdout)["pending"] == []
    sql = run(pg_url, "migrate", "--sql", "--json")
    assert sql.returncode == 0, sql.stderr
    assert json.loads(sql.stdout)["current"] == json.loads(found.stdout)["head"]


def test_keys_rotate(db_url: str) -> None:
    created = json.loads(run(db_url, "keys", "create", "--service", "games", "--scopes",
                             "wallet:read", "--json").stdout)
    rotated = run(db_url, "keys", "rotate", created["id"], "--grace", "60", "--json")
    assert rotated.returncode == 0, rotated.stderr
    new = json.loads(rotated.stdout)
    assert new["key"].startswith("cpk_") and new["key"] != created["key"]
    assert new["service"] == "games" and new["scopes"] == ["wallet:read"]
    assert new["previous"]["id"] == created["id"] and new["previous"]["expires_at"]
    listed = {k["id"]: k for k in json.loads(run(db_url, "keys", "list", "--json").stdout)}
    assert listed[created["id"]]["expires_at"] and listed[new["id"]]["expires_at"] is None
    plain = run(db_url, "keys", "list")  # not a terminal: tab-separated, no header
    assert plain.stdout.count("\n") == 2 and "\t" in plain.stdout
    assert run(db_url, "keys", "rotate", "key_nope").returncode == 1


async def _seed(client: httpx.AsyncClient, key: str) -> list[str]:
    ids = []
    for i, (user, amount) in enumerate([("u1", 10), ("u2", 20), ("u1", 5)]):
        r = await client.post("/internal/v1/wallet/credit", headers={
            "X-API-Key": key, "Idempotency-Key": f"e{i}"}, json={
            "user_id": user, "currency": "points", "amount": amount,
            "description": f"credit, \"quoted\" {i}", "reference_id": f"r{i}",
            "metadata": {"n": i}})
        assert r.status_code == 201
        ids.append(r.json()["id"])
    return ids


async def test_export_transactions_and_entries(client: httpx.AsyncClient, make_key: MakeKey,
                                               db_url: str, tmp_path: Path) -> None:
    ids = await _seed(client, await make_key())
    out = tmp_path / "tx.jsonl"
    done = run(db_url, "export", "transactions", "--format", "jsonl", "-o", str(out))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ids  # oldest first
    assert rows[0]["postings"] == [{"source": "service:games", "destination": "user:u1",
                                    "amount": 10, "currency": "points"}]
    assert rows[2]["metadata"] == {"n": 2} and rows[0]["kind"] == "credit"
    assert "exported 3 transactions" in done.stderr

    only_u1 = run(db_url, "export", "transactions", "--account", "user:u1")
    assert only_u1.returncode == 0
    table = list(csv.DictReader(io.StringIO(only_u1.stdout)))
    assert [r["id"] for r in table] == [ids[0], ids[2]]
    assert table[0]["description"] == 'credit, "quoted" 0'
    assert json.loads(table[0]["postings"])[0]["amount"] == 10

    entries = run(db_url, "export", "entries", "--account", "user:u1", "--format", "jsonl")
    lines = [json.loads(x) for x in entries.stdout.splitlines()]
    assert [(e["amount"], e["balance_after"]) for e in lines] == [(10, 10), (5, 15)]
    everything = run(db_url, "export", "entries")
    assert len(list(csv.DictReader(io.StringIO(everything.stdout)))) == 6
    future = run(db_url, "export", "transactions", "--from", "2999-01-01")
    assert future.returncode == 0 and future.stdout.strip() == ",".join(
        ["id", "created_at", "kind", "description", "reference_id", "service", "initiator",
         "postings", "metadata", "internal_notes", "idempotency_key"])


async def test_export_streams_in_chunks(app: Any, client: httpx.AsyncClient,
                                        make_key: MakeKey,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """More rows than one chunk: every row once, in order (keyset pages, no OFFSET)."""
    from coinpurse.ledger import queries
    from coinpurse.ops import export

    ids = await _seed(client, await make_key())
    monkeypatch.setattr(queries, "EXPORT_CHUNK", 2)
    async with app.state.coinpurse.db.connect() as conn:
        txs = [r async for r in export.rows(conn, "transactions", start=None, end=None,
                                           address=None, currency=None)]
        entries = [r async for r in export.rows(conn, "entries", start=None, end=None,
                                               address=None, currency=None)]
    assert [t["id"] for t in txs] == ids
    assert len(entries) == 6
    assert [int(e["id"]) for e in entries] == sorted(int(e["id"]) for e in entries)
    assert len({e["id"] for e in entries}) == 6


def test_config_check(tmp_path: Path) -> None:
    env = {**os.environ, "COINPURSE_DATABASE_URL": "postgresql://app:hunter2pw@db/coinpurse",
           "COINPURSE_JWT_SECRET": TEST_JWT_SECRET, "COINPURSE_METRICS_TOKEN": "m" * 20,
           "COINPURSE_REDIS_URL": "redis://:redispw123@cache:6379/0"}

    def check(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "coinpurse", "config", "check", *args],
                              env={**env, **extra}, capture_output=True, text=True,
                              timeout=60)

    ok = check("--json")
    assert ok.returncode == 0, ok.stderr
    found = json.loads(ok.stdout)
    shown = found["settings"]
    assert found["ok"] is True and found["unknown"] == []
    assert shown["COINPURSE_DATABASE_URL"] == {
        "value": "postgresql://app:***@db/coinpurse", "source": "env"}
    assert shown["COINPURSE_JWT_SECRET"]["value"] == "********"
    assert shown["COINPURSE_REDIS_URL"]["value"] == "redis://:***@cache:6379/0"
    assert shown["COINPURSE_CURRENCIES"] == {"value": "points:0,usdt:2", "source": "default"}
    assert shown["COINPURSE_ACCESS_TOKEN_TTL_S"]["value"] == "900"
    for secret in ("hunter2pw", TEST_JWT_SECRET, "m" * 20, "redispw123"):
        assert secret not in ok.stdout + ok.stderr
    typo = check(COINPURSE_CURENCIES="points:0")
    assert typo.returncode == 2
    assert "COINPURSE_CURENCIES (did you mean COINPURSE_CURRENCIES?)" in typo.stderr
    bad = check(COINPURSE_TRUSTED_PROXIES="10.0.0.0/33")
    assert bad.returncode == 2 and "COINPURSE_TRUSTED_PROXIES" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_every_command_takes_json() -> None:
    """--json everywhere: each command (but serve and worker, which run) has the option."""
    from click import Group

    from coinpurse.cli import main

    def commands(group: Group, prefix: str = "") -> list[tuple[str, Any]]:
        found = []
        for name, cmd in group.commands.items():
            if isinstance(cmd, Group):
                found += commands(cmd, f"{prefix}{name} ")
            else:
                found.append((prefix + name, cmd))
        return found

    missing = [name for name, cmd in commands(main)
               if name not in ("serve", "worker", "export")
               and not any("--json" in p.opts for p in cmd.params)]
    assert missing == []
