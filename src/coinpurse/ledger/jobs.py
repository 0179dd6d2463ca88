"""The ledger's background work: expired idempotency keys are purged."""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.core.jobs import Job
from coinpurse.ledger.idempotency import purge_all_expired

log = logging.getLogger("coinpurse.ledger")
PURGE_EVERY_S = 600


class HasDb(Protocol):
    @property
    def db(self) -> AsyncEngine: ...


def jobs(state: HasDb) -> list[Job]:
    async def purge() -> int:
        purged = await purge_all_expired(state.db)
        if purged:
            log.info("purged %d expired idempotency keys", purged)
        return purged

    return [Job("idempotency-purge", purge, PURGE_EVERY_S)]
