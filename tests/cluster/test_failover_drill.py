"""The failover drill, CI-sized: pg_auto_failover (Debian's packages) on 127.0.0.1, two API
processes under a load of transfers, the primary SIGKILLed mid-load (tests/cluster/drill.py).
``scripts/failover-drill`` runs the same drill longer and prints its report."""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.drill import run_drill


@pytest.mark.slow
def test_failover_loses_and_duplicates_nothing() -> None:
    lines: list[str] = []
    report = asyncio.run(run_drill(clients=8, before_kill_s=3.0, after_recovery_s=3.0,
                                   unavailable_max_s=30.0, log=lines.append))
    text = report.text() + "\n" + "\n".join(lines)
    # acknowledged transfers present exactly once, sums zero, no negative user balance,
    # every lost answer resolved by its key, service back within the bound
    assert report.problems == [], text
    assert report.sync == ("on", "ANY 1 (pgautofailover_standby_2)"), text
    assert report.acked_during_load > 50, text
    assert report.promotion_s > 0 and report.unavailable_s < 30, text
    assert set(report.sums) == {"points"} and report.sums["points"] == 0, text
