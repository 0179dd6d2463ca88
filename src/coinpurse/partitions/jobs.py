"""The coming months' partitions are created ahead, every hour."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.core.jobs import Job
from coinpurse.partitions.service import maintain

MAINTAIN_EVERY_S = 3600.0


class HasDb(Protocol):
    @property
    def db(self) -> AsyncEngine: ...


def jobs(state: HasDb) -> list[Job]:
    async def step() -> list[str]:
        return await maintain(state.db)

    return [Job("history-partitions", step, MAINTAIN_EVERY_S)]
