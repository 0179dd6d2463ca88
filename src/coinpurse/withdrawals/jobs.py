"""Withdrawals whose hold expired before an operator decided are recorded as expired soon
after (``withdrawal.expired`` in the same commit), not only when someone next looks."""

from __future__ import annotations

from coinpurse.core.jobs import Job
from coinpurse.state import AppState
from coinpurse.withdrawals.service import LAPSED_BATCH, expire_lapsed

EXPIRE_EVERY_S = 5.0


def jobs(state: AppState) -> list[Job]:
    async def expire() -> int:
        total = 0
        while (n := await expire_lapsed(state.db)) > 0:
            total += n
            if n < LAPSED_BATCH:
                break
        return total

    return [Job("withdrawal-expiry", expire, EXPIRE_EVERY_S)]
