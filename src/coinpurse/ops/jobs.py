"""The metrics sampler: gauges that no request updates (pool, queue, webhook inbox)."""

from __future__ import annotations

from coinpurse.core.jobs import Job
from coinpurse.ops import service
from coinpurse.state import AppState

SAMPLE_EVERY_S = 5.0


def jobs(state: AppState) -> list[Job]:
    return [Job("ops-metrics-sampler",
                lambda: service.sample(state.db, state.ledger, state.reads.standby,
                                       state.ledger_db),
                SAMPLE_EVERY_S)]
