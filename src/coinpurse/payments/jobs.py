"""The providers' webhook inbox is applied in the background, with retries."""

from __future__ import annotations

from coinpurse.core.jobs import Job
from coinpurse.payments import inbox
from coinpurse.payments.service import Payments
from coinpurse.state import AppState


def jobs(state: AppState) -> list[Job]:
    settings = state.settings
    if settings.inbox_poll_s <= 0:
        return []  # COINPURSE_INBOX_POLL_S=0: another process applies the inbox
    payments = Payments(state.db, state.ledger, settings, settings, settings)

    async def apply_due() -> int:
        total = 0
        while (n := await inbox.process_due(payments)) > 0:
            total += n
            if n < inbox.BATCH:
                break
        return total

    return [Job("payments-inbox", apply_due, settings.inbox_poll_s)]
