"""Demo data for ``coinpurse serve --demo``: posted through the ledger like any credit."""

from __future__ import annotations

from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.events.service import Outbox, Wakeup
from coinpurse.ledger.idempotency import StoredResponse, claim
from coinpurse.ledger.model import Outcome, Posting, TransactionSpec
from coinpurse.ledger.service import Ledger

DEMO_CREDITS = (("alice", 1000, "Welcome bonus"), ("bob", 250, "Welcome bonus"))


async def seed(settings: Settings) -> None:
    """Credit the demo users once; fixed idempotency keys make a restart replay, not repeat."""
    currency = next(iter(settings.currencies))
    db = create_engine(settings.database_url, pool_size=1)
    ledger = Ledger(db, may_go_negative=settings.may_go_negative,
                    idempotency_ttl_s=10 * 365 * 86_400)
    ledger.add_hook(Outbox(Wakeup()))  # its transaction.posted events, as in serve
    await ledger.start()

    def render(_outcomes: list[Outcome]) -> StoredResponse:
        return StoredResponse(201, b"{}")

    try:
        for user, amount, text in DEMO_CREDITS:
            spec = TransactionSpec(
                kind="credit",
                postings=(Posting("service:demo", f"user:{user}", amount, currency),),
                description=text,
                reference_id=f"demo-{user}",
                initiator="service:demo",
                service="demo",
            )
            await ledger.submit([spec], render=render,
                                claim=claim("service:demo", f"demo-seed-{user}", "seed", user))
    finally:
        await ledger.stop()
        await db.dispose()
