"""Events past their retention are deleted."""

from __future__ import annotations

from coinpurse.core.jobs import Job
from coinpurse.events.service import purge
from coinpurse.state import AppState

PURGE_EVERY_S = 3600


def jobs(state: AppState) -> list[Job]:
    async def expire() -> int:
        return await purge(state.db, state.settings.events_retention_days)

    return [Job("events-retention", expire, PURGE_EVERY_S)]
