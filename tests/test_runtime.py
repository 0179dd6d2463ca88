"""The garbage-collector tuning of serving processes (core/runtime.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coinpurse.core.db import migrate_sync
from coinpurse.core.runtime import parse_thresholds
from coinpurse.core.settings import ConfigError, CoreSettings, load

# Runs the served app's start-up and shut-down (its lifespan) in a process of its own, as
# `coinpurse serve` does, and prints what the collector looks like in between.
_PROBE = """
import gc, json
from starlette.testclient import TestClient
from coinpurse.app import create_app, create_served_app
factory = create_served_app if __import__("sys").argv[1] == "served" else create_app
before = gc.get_threshold()
with TestClient(factory()) as client:
    ready = client.get("/readyz").status_code
    print(json.dumps({"before": before, "after": gc.get_threshold(),
                      "frozen": gc.get_freeze_count(), "ready": ready}))
"""


def _probe(tmp_path: Path, which: str, **env: str) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COINPURSE_")}
    environ.update(COINPURSE_DATABASE_URL=f"sqlite:///{tmp_path / 'gc.db'}", **env)
    migrate_sync(environ["COINPURSE_DATABASE_URL"])
    out = subprocess.run([sys.executable, "-c", _PROBE, which], env=environ,
                         capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_served_app_freezes_its_start_up_and_raises_the_thresholds(tmp_path: Path) -> None:
    got = _probe(tmp_path, "served")
    assert got["ready"] == 200
    assert got["before"] == [700, 10, 10]  # CPython's defaults
    assert got["after"] == [10_000, 20, 50]
    assert isinstance(got["frozen"], int) and got["frozen"] > 50_000


def test_the_settings_choose_the_thresholds_and_may_turn_freezing_off(tmp_path: Path) -> None:
    got = _probe(tmp_path, "served", COINPURSE_GC_THRESHOLDS="2000,15,30",
                 COINPURSE_GC_FREEZE="false")
    assert got["after"] == [2000, 15, 30]
    assert got["frozen"] == 0


def test_an_app_built_in_process_leaves_the_collector_alone(tmp_path: Path) -> None:
    got = _probe(tmp_path, "plain")
    assert got["ready"] == 200
    assert got["after"] == [700, 10, 10]
    assert got["frozen"] == 0


@pytest.mark.parametrize("text", ["", "1,2", "10000,20,50,1", "a,b,c", "99,1,1",
                                  "10000,0,50", "10000,20,1001", "-1,2,3", "\uff11,2,3"])
def test_bad_thresholds_are_refused_at_start_up(text: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        parse_thresholds(text)
    monkeypatch.setenv("COINPURSE_GC_THRESHOLDS", text)
    with pytest.raises(ConfigError, match="COINPURSE_GC_THRESHOLDS"):
        load(CoreSettings)
