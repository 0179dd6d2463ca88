"""The sealer (every ``COINPURSE_SEAL_INTERVAL_S``) and the daily reconciliation
(``COINPURSE_RECONCILE_AT``), in every serve and worker process; both are safe to run in
several processes at once (the sealer's cursor lock, the day's unique claim)."""

from __future__ import annotations

from coinpurse.core.jobs import Job
from coinpurse.reconcile.sealer import Sealer
from coinpurse.reconcile.service import Reconciler
from coinpurse.state import AppState

SCHEDULE_EVERY_S = 30.0


def jobs(state: AppState) -> list[Job]:
    settings = state.settings
    found: list[Job] = []
    if settings.seal_interval_s > 0:
        found.append(Job("ledger-sealer", Sealer(state.db).seal_pending,
                         settings.seal_interval_s))
    if settings.reconcile_time is not None:
        reconciler = Reconciler(state.db, settings, settings)
        found.append(Job("reconcile-schedule", reconciler.scheduled, SCHEDULE_EVERY_S))
    return found
