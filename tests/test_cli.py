"""The ``coinpurse`` command as a user runs it: keys, check, worker, configuration errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_JWT_SECRET, Server


def run(db_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coinpurse", *args],
        env={**os.environ, "COINPURSE_DATABASE_URL": db_url,
             "COINPURSE_JWT_SECRET": TEST_JWT_SECRET, **env},
        capture_output=True, text=True, timeout=60,
    )


def test_keys_create_list_revoke(db_url: str, serve: object) -> None:
    created = run(db_url, "keys", "create", "--service", "games", "--scopes",
                  "wallet:read,wallet:credit:points", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["service"] == "games" and key["key"].startswith("cpk_")
    assert key["scopes"] == ["wallet:read", "wallet:credit:points"] and key["id"]

    listed = run(db_url, "keys", "list", "--json")
    assert [k["id"] for k in json.loads(listed.stdout)] == [key["id"]]
    assert key["key"] not in listed.stdout

    server: Server = serve()  # type: ignore[operator]
    h = {"X-API-Key": key["key"]}
    assert httpx.get(f"{server.base_url}/internal/v1/wallet/balance/u1", headers=h,
                     timeout=5).status_code == 200
    revoked = run(db_url, "keys", "revoke", key["id"])
    assert revoked.returncode == 0
    r = httpx.get(f"{server.base_url}/internal/v1/wallet/balance/u1", headers=h, timeout=5)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert run(db_url, "keys", "revoke", "key_nope").returncode == 1


def test_bad_input_to_the_cli_is_a_clear_message(db_url: str) -> None:
    bad_scope = run(db_url, "keys", "create", "--service", "games", "--scopes", "root")
    assert bad_scope.returncode == 2 and "not a scope" in bad_scope.stderr
    bad_name = run(db_url, "keys", "create", "--service", "Games!", "--scopes", "*")
    assert bad_name.returncode == 2
    bad_env = run(db_url, "migrate", COINPURSE_CURRENCIES="points:x")
    assert bad_env.returncode == 2 and "COINPURSE_CURRENCIES" in bad_env.stderr
    assert "Traceback" not in bad_env.stderr


def test_sqlite_refuses_several_workers(tmp_path: Path) -> None:
    r = run(f"sqlite:///{tmp_path}/x.db", "serve", "--workers", "2")
    assert r.returncode == 2 and "SQLite" in r.stderr


def test_check_passes_on_a_fresh_ledger(db_url: str) -> None:
    r = run(db_url, "check", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["ok"] is True


def test_worker_starts_and_stops_on_sigterm(db_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coinpurse", "worker"],
        env={**os.environ, "COINPURSE_DATABASE_URL": db_url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "worker running" in line
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_check_finds_a_balance_that_its_entries_do_not_explain(db_url: str) -> None:
    import asyncio

    from sqlalchemy import text

    from coinpurse.core.db import create_engine

    async def tamper() -> None:
        engine = create_engine(db_url, pool_size=1)
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO accounts (address, currency, balance, held, overdraft, "
                "created_at, updated_at) VALUES ('user:x', 'points', 5, 0, false, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        await engine.dispose()

    asyncio.run(tamper())
    r = run(db_url, "check", "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert set(report["problems"]) >= {"nonzero_currency_sum", "balance_not_sum_of_entries"}


def test_admin_create_then_sign_in_needs_two_factor(db_url: str) -> None:
    import asyncio

    import httpx
    from asgi_lifespan import LifespanManager

    from coinpurse.app import create_app
    from coinpurse.config import Settings

    made = run(db_url, "admin", "create", "--email", "Root@Example.com", "--json",
               COINPURSE_AUTH="builtin", COINPURSE_ADMIN_PASSWORD="a long admin password")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["role"] == "admin" and json.loads(made.stdout)["created"]
    again = run(db_url, "admin", "create", "--email", "root@example.com", "--role", "auditor",
                "--json", COINPURSE_AUTH="builtin",
                COINPURSE_ADMIN_PASSWORD="a long admin password")
    assert json.loads(again.stdout)["created"] is False
    weak = run(db_url, "admin", "create", "--email", "w@example.com",
               COINPURSE_AUTH="builtin", COINPURSE_ADMIN_PASSWORD="short")
    assert weak.returncode == 2 and "password" in weak.stderr

    async def sign_in() -> None:
        app = create_app(Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                                  auth="builtin"))
        async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.post("/api/v1/auth/login", json={"email": "root@example.com",
                                                         "password": "a long admin password"})
            assert r.status_code == 200 and r.json()["user"]["role"] == "auditor"
            stats = await c.get("/admin/v1/stats", headers={
                "Authorization": f"Bearer {r.json()['access_token']}"})
            assert stats.status_code == 403 and stats.json()["reason"] == "mfa_required"

    asyncio.run(sign_in())


def test_reserved_service_name_is_refused_by_the_cli(db_url: str) -> None:
    r = run(db_url, "keys", "create", "--service", "withdrawals", "--scopes", "*")
    assert r.returncode == 2 and "reserved" in r.stderr


def test_a_missing_database_is_one_clear_line_and_is_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/absent.db"
    for args in (("check",), ("keys", "list"), ("check", "--json"),
                 ("keys", "create", "--service", "games", "--scopes", "*")):
        r = run(url, *args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "coinpurse migrate" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "absent.db").exists()


def test_an_unmigrated_database_says_to_migrate(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()  # exists, but no schema
    r = run(f"sqlite:///{path}", "keys", "list")
    assert r.returncode == 1 and "not migrated" in r.stderr and "Traceback" not in r.stderr
    assert run(f"sqlite:///{path}", "migrate").returncode == 0
    assert run(f"sqlite:///{path}", "keys", "list", "--json").stdout.strip() == "[]"


def test_an_unreachable_database_is_one_clear_line() -> None:
    from tests.pgserver import free_port

    r = run(f"postgresql://nobody:x@127.0.0.1:{free_port()}/none", "check")
    assert r.returncode == 1 and "cannot reach the database" in r.stderr
    assert "Traceback" not in r.stderr and "x@" not in r.stderr  # no password in the line


def test_an_unknown_setting_is_reported(db_url: str) -> None:
    r = run(db_url, "check", COINPURSE_CURRENCY="points:0")
    assert r.returncode == 0
    assert "unknown setting COINPURSE_CURRENCY" in r.stderr
    assert "did you mean COINPURSE_CURRENCIES" in r.stderr


def test_serve_points_checkout_links_at_its_own_port(db_url: str, serve: object) -> None:
    server: Server = serve()  # type: ignore[operator]
    from tests.conftest import user_token

    r = httpx.post(f"{server.base_url}/api/v1/topups", timeout=10,
                   headers={"Authorization": f"Bearer {user_token('port-user')}",
                            "Idempotency-Key": "port-1"},
                   json={"package_id": "small", "provider": "mock"})
    assert r.status_code == 201, r.text
    assert r.json()["checkout_url"].startswith(f"http://127.0.0.1:{server.port}/")



def test_redis_rate_limits_without_the_extra_say_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import pydantic

    from coinpurse.config import Settings

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "coredis" else real(name, *a))
    with pytest.raises(pydantic.ValidationError, match=r"coinpurse\[redis\]"):
        Settings(rate_limit_storage="redis://127.0.0.1:6379")
    with pytest.raises(pydantic.ValidationError, match="memory:// or redis://"):
        Settings(rate_limit_storage="gopher://x")
    assert Settings(rate_limit_storage="memory://").rate_limit_storage == "memory://"
