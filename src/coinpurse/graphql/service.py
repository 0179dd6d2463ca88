"""What GraphQL needs beyond the domains' services: a user's balance changes, live, read
from the event log (the same ``transaction.posted`` and ``hold.*`` events as every other
reader), so a credit made through REST, by any process, reaches a subscriber."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.events import service as events
from coinpurse.events.repository import StoredEvent
from coinpurse.events.service import TypeFilter, Wakeup

BALANCE_EVENTS = TypeFilter(("transaction.posted",), ("hold.",))
PAGE = 500


@dataclass(frozen=True, slots=True)
class BalanceChange:
    event_id: int
    address: str
    currency: str
    balance: int
    held: int
    available: int
    version: int
    transaction_id: str | None
    hold_id: str | None


def owns(user_id: str, address: str) -> bool:
    """``user:<id>`` and its sub-wallets ``user:<id>:<name>``."""
    parts = address.split(":")
    return len(parts) in (2, 3) and parts[0] == "user" and parts[1] == user_id


def changes(event: StoredEvent, user_id: str) -> Iterator[BalanceChange]:
    """The user's balances that an event changed."""
    data = event.data
    balances: list[dict[str, Any]]
    if event.type == "transaction.posted":
        balances, tx_id, hold_id = list(data.get("balances", ())), data["id"], None
    else:
        balances = [data["balance"]]
        tx_id, hold_id = data["hold"]["transaction_id"], data["hold"]["id"]
    for b in balances:
        if owns(user_id, str(b["address"])):
            yield BalanceChange(event.id, b["address"], b["currency"], b["balance"], b["held"],
                                b["available"], b["version"], tx_id, hold_id)


async def balance_changes(db: AsyncEngine, wakeup: Wakeup, user_id: str,
                          poll_s: float = 1.0) -> AsyncIterator[BalanceChange]:
    """From now on, for ever: woken by this process's commits, and every ``poll_s`` for
    other processes' commits."""
    after = await events.head(db)
    while True:
        found, after = await events.page(db, after=after, limit=PAGE, types=BALANCE_EVENTS)
        for event in found:
            for change in changes(event, user_id):
                yield change
        if len(found) < PAGE:
            await wakeup.wait(poll_s)
