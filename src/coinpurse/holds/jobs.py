"""Holds past their expiry release themselves."""

from __future__ import annotations

from coinpurse.core.jobs import Job
from coinpurse.holds.service import EXPIRE_BATCH, Holds
from coinpurse.state import AppState

EXPIRE_EVERY_S = 1.0


def jobs(state: AppState) -> list[Job]:
    holds = Holds(state.db, state.ledger)

    async def expire() -> int:
        total = 0
        while (n := await holds.expire_due()) > 0:
            total += n
            if n < EXPIRE_BATCH:
                break
        return total

    return [Job("hold-expiry", expire, EXPIRE_EVERY_S)]
