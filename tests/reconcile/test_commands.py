"""``coinpurse reconcile`` and ``coinpurse verify`` as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import httpx

from coinpurse.config import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.fakes.providers import FakeProviders
from tests.reconcile.conftest import Book, query, seal, tamper
from tests.reconcile.test_statements import stripe_paid, topup


def env_of(settings: Settings) -> dict[str, str]:
    """The test settings as the environment a command reads (the fakes' keys)."""
    from tests.payments import conftest as p

    return {**os.environ, "COINPURSE_DATABASE_URL": settings.database_url,
            "COINPURSE_JWT_SECRET": TEST_JWT_SECRET,
            "COINPURSE_CURRENCIES": "coins:0,diamonds:0,points:0",
            "COINPURSE_TOPUP_PROVIDERS": "mock,stripe,razorpay",
            "COINPURSE_STRIPE_SECRET_KEY": p.STRIPE_KEY,
            "COINPURSE_STRIPE_WEBHOOK_SECRETS": p.STRIPE_WHSEC_NEW,
            "COINPURSE_STRIPE_API_BASE": str(settings.stripe_api_base),
            "COINPURSE_RAZORPAY_KEY_ID": p.RZP_KEY_ID,
            "COINPURSE_RAZORPAY_KEY_SECRET": p.RZP_KEY_SECRET,
            "COINPURSE_RAZORPAY_WEBHOOK_SECRET": p.RZP_WHSEC,
            "COINPURSE_RAZORPAY_API_BASE": str(settings.razorpay_api_base)}


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coinpurse", *args], env=env_of(settings),
                          capture_output=True, text=True, timeout=120)


async def test_reconcile_reports_and_exits_by_outcome(book: Book, settings: Settings) -> None:
    clean = cli(settings, "reconcile")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "ledger, full, PASSED" in clean.stdout and "transactions 5" in clean.stdout
    await tamper(settings.database_url, (
        "UPDATE accounts SET balance = 2 WHERE address = 'user:carol'", {}))
    broken = cli(settings, "reconcile", "--json")
    assert broken.returncode == 1, broken.stderr
    out = json.loads(broken.stdout)
    assert out["status"] == "failed" and out["mode"] == "incremental"
    assert {d["check"] for d in out["discrepancies"]} == {
        "currency_sum_not_zero", "balance_not_sum_of_entries", "last_balance_after_mismatch"}
    table = cli(settings, "reconcile", "--full")
    assert table.returncode == 1
    lines = table.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["CHECK", "SUBJECT"])
    assert any("balance_not_sum_of_entries" in x and "user:carol (points)" in x
               for x in lines[header + 1:])


async def test_verify_exports_a_head_that_proves_history(book: Book,
                                                         settings: Settings) -> None:
    exported = cli(settings, "verify", "--head")
    assert exported.returncode == 0, exported.stderr
    head = exported.stdout.strip()
    (last,) = await query(settings.database_url, "SELECT sequence, hash FROM ledger_seals "
                                                 "ORDER BY sequence DESC LIMIT 1")
    assert head == f"{last.sequence}:{last.hash}" and "PASSED" in exported.stderr
    assert cli(settings, "verify", "--expect", head).returncode == 0
    wrong = cli(settings, "verify", "--expect", f"{last.sequence}:{'0' * 64}", "--json")
    assert wrong.returncode == 1
    out = json.loads(wrong.stdout)
    assert out["head"] is None
    assert [d["check"] for d in out["discrepancies"]] == ["head_mismatch"]
    await tamper(settings.database_url,
                 ("UPDATE entries SET balance_after = balance_after + 1 WHERE id = 1", {}))
    broken = cli(settings, "verify", "--full")
    assert broken.returncode == 1 and "transaction_changed" in broken.stdout


def test_bad_usage_is_a_clear_message(settings: Settings) -> None:
    for args, words in ((("verify", "--expect", "nope"), "SEQUENCE:HASH"),
                        (("verify", "--full", "--from-sequence", "3"), "alternatives"),
                        (("reconcile", "--from", "2026-01-01"), "--provider"),
                        (("reconcile", "--provider", "stripe", "--full"), "--full"),
                        (("reconcile", "--provider", "stripe", "--from", "2026-01-02",
                          "--to", "2026-01-01"), "before"),
                        (("reconcile", "--provider", "paypal"), "paypal")):
        r = cli(settings, *args)
        assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


async def test_reconcile_a_provider_statement(client: httpx.AsyncClient, app: Any,
                                              fakes: FakeProviders, settings: Settings) -> None:
    await stripe_paid(client, app, fakes, await topup(client, "sue", "stripe"))
    today = datetime.now(UTC).date().isoformat()
    r = cli(settings, "reconcile", "--provider", "stripe", "--from", today, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["kind"] == "provider" and out["provider"] == "stripe"
    assert out["counts"] == {"provider_payments": 1, "orders": 1}
    assert out["scope"]["period_from"].startswith(today)


def in_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """A command run with a pseudo-terminal as its output: its exit code and all it drew."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "coinpurse", *args], env=env,
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(60), b"".join(chunks).decode()


async def test_a_terminal_shows_progress(book: Book, settings: Settings) -> None:
    await seal(settings)
    code, shown = await asyncio.to_thread(in_a_terminal, env_of(settings), "reconcile", "--full")
    assert code == 0, shown
    assert "\raccounts" in shown and "\rtransactions   [" in shown
    assert "##############################] 5/5" in shown
