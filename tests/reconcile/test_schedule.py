"""The daily run, once a day across every process: two workers, one run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from coinpurse.config import Settings
from coinpurse.reconcile.settings import parse_at
from tests.reconcile.conftest import query, reconciler


def at(settings: Settings, value: str, full_every_days: int = 7) -> Settings:
    return Settings(**{**settings.model_dump(exclude_unset=True), "reconcile_at": value,
                       "reconcile_full_every_days": full_every_days})


def test_the_time_is_hh_mm_utc_or_never() -> None:
    assert parse_at("02:00") is not None and parse_at("never") is None
    for bad in ("2:00", "24:00", "02:60", "noon", ""):
        try:
            parse_at(bad)
        except ValueError as exc:
            assert "HH:MM" in str(exc)
        else:
            raise AssertionError(bad)


async def test_not_before_the_time_and_once_a_day(settings: Settings) -> None:
    s = at(settings, "02:00")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    async with reconciler(s) as rec:
        assert await rec.scheduled(today + timedelta(hours=1, minutes=59)) is None
        done = await rec.scheduled(today + timedelta(hours=2))
        assert done is not None and done.status == "passed" and done.trigger == "schedule"
        assert done.scheduled_for == today.date().isoformat() and done.mode == "full"
        assert await rec.scheduled(today + timedelta(hours=23)) is None
        tomorrow = await rec.scheduled(today + timedelta(days=1, hours=3))
        assert tomorrow is not None and tomorrow.mode == "incremental"
    async with reconciler(at(settings, "never")) as rec:
        assert await rec.scheduled(today + timedelta(days=2, hours=3)) is None


async def test_two_runners_run_the_day_once(settings: Settings) -> None:
    s = at(settings, "00:00")
    async with reconciler(s) as one, reconciler(s) as two:
        results = await asyncio.gather(one.scheduled(), two.scheduled(), one.scheduled())
    ran = [r for r in results if r is not None]
    assert len(ran) == 1 and ran[0].status == "passed"
    rows = await query(settings.database_url, "SELECT scheduled_for FROM reconciliations")
    assert [r.scheduled_for for r in rows] == [datetime.now(UTC).date().isoformat()]


def test_two_worker_processes_run_the_day_once(db_url: str) -> None:
    env = {**os.environ, "COINPURSE_DATABASE_URL": db_url, "COINPURSE_RECONCILE_AT": "00:00",
           "COINPURSE_SEAL_INTERVAL_S": "0.5"}
    workers = [subprocess.Popen([sys.executable, "-m", "coinpurse", "worker"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    try:
        for w in workers:
            assert w.stdout is not None
            assert "worker running" in w.stdout.readline()
        deadline = time.monotonic() + 60
        rows: list[Any] = []
        while time.monotonic() < deadline:
            rows = asyncio.run(query(db_url, "SELECT status, trigger, scheduled_for "
                                             "FROM reconciliations"))
            if rows and all(r.status != "running" for r in rows):
                break
            time.sleep(0.2)
        time.sleep(1.0)  # both workers have ticked by now (each does at start)
        rows = asyncio.run(query(db_url, "SELECT status, trigger, scheduled_for "
                                         "FROM reconciliations"))
        assert [(r.status, r.trigger) for r in rows] == [("passed", "schedule")]
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(20)
            assert w.returncode == 0
