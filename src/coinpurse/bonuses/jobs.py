"""The bonus workers: expired bonuses are forfeited, new users get their sign-up bonuses."""

from __future__ import annotations

from coinpurse.bonuses.service import EXPIRE_BATCH, SIGNUP_BATCH, Bonuses
from coinpurse.core.jobs import Job
from coinpurse.state import AppState

EXPIRE_EVERY_S = 5.0
SIGNUPS_EVERY_S = 1.0
ROUNDS_MAX = 20  # per pass: a job that keeps failing must not hold the pass for ever


def jobs(state: AppState) -> list[Job]:
    bonuses = Bonuses(state.db, state.ledger, state.settings)

    async def expire() -> int:
        total = 0
        for _ in range(ROUNDS_MAX):
            n = await bonuses.expire_due()
            total += n
            if n < EXPIRE_BATCH:
                break
        return total

    async def signups() -> int:
        total = 0
        for _ in range(ROUNDS_MAX):
            n = await bonuses.grant_signups()
            total += n
            if n < SIGNUP_BATCH:
                break
        return total

    return [Job("bonus-expiry", expire, EXPIRE_EVERY_S),
            Job("bonus-signups", signups, SIGNUPS_EVERY_S)]
