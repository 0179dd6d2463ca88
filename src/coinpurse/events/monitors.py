"""Balance monitors: a service asks to hear when an account's balance goes below (or above)
a threshold, e.g. a game's ``service:`` account running low, a fee account filling up.

The check runs in the ledger's outbox hook, inside each batch's transaction: one indexed
query (on PostgreSQL, part of the statement that writes the batch's events) finds the
monitors of the accounts the batch's transactions changed, and each
transaction that moves a monitored balance into its condition writes one
``balance.threshold_crossed`` event in the same commit. The balance compared is the
*posted* balance (``balance``, what the entries' ``balance_after`` say), not ``available``:
a hold does not cross a threshold, its capture does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.core.clock import iso, utcnow
from coinpurse.core.errors import NotFound, ValidationFailed
from coinpurse.core.ids import new_id
from coinpurse.events import repository
from coinpurse.events.repository import NewEvent
from coinpurse.ledger.model import AccountKey, Transaction

MONITORS_MAX = 10_000
CONDITIONS = ("below", "above")


@dataclass(frozen=True, slots=True)
class Monitor:
    id: str
    address: str
    currency: str
    condition: str
    amount: int
    description: str
    service: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Row[Any]) -> Monitor:
        return cls(row.id, row.address, row.currency, row.condition, row.amount,
                   row.description, row.service, row.created_at)

    def holds(self, balance: int) -> bool:
        """Whether ``balance`` is in the monitored condition."""
        return balance < self.amount if self.condition == "below" else balance > self.amount


def changes(transactions: Sequence[Transaction]) -> list[tuple[Transaction, AccountKey,
                                                                 int, int]]:
    """(transaction, account, balance before it, balance after it) for every account each
    transaction changed, from its entries (a transaction may touch an account twice)."""
    out = []
    for tx in transactions:
        before: dict[AccountKey, int] = {}
        after: dict[AccountKey, int] = {}
        for e in tx.entries:
            key = (e.address, e.currency)
            before.setdefault(key, e.balance_after - e.amount)
            after[key] = e.balance_after
        out += [(tx, key, before[key], after[key]) for key in before]
    return out


def crossed(moved: Sequence[tuple[Transaction, AccountKey, int, int]],
            monitor_rows: Sequence[Row[Any]]) -> list[NewEvent]:
    """The crossing events of ``moved`` (``changes``) for these monitors, in order."""
    by_key: dict[AccountKey, list[Monitor]] = {}
    for m in map(Monitor.of, monitor_rows):
        by_key.setdefault((m.address, m.currency), []).append(m)
    out = []
    for tx, key, before, after in moved:
        for m in by_key.get(key, ()):
            if m.holds(after) and not m.holds(before):
                out.append(NewEvent("balance.threshold_crossed", {
                    "monitor": view(m), "address": key[0], "currency": key[1],
                    "compared": "balance", "balance_before": before, "balance_after": after,
                    "version": tx.balances_after[key].version, "transaction_id": tx.id}))
    return out


def view(m: Monitor) -> dict[str, Any]:
    return {"id": m.id, "address": m.address, "currency": m.currency,
            "condition": m.condition, "amount": m.amount, "description": m.description,
            "service": m.service, "created_at": iso(m.created_at)}


async def create(db: AsyncEngine, *, address: str, currency: str, condition: str,
                 amount: int, description: str, service: str | None) -> Monitor:
    assert condition in CONDITIONS
    monitor = Monitor(new_id(), address, currency, condition, amount, description, service,
                      utcnow())
    async with db.begin() as conn:
        if await repository.count_monitors(conn) >= MONITORS_MAX:
            raise ValidationFailed(f"at most {MONITORS_MAX} balance monitors; delete some",
                                   reason="too_many_monitors")
        await repository.insert_monitor(conn, {
            "id": monitor.id, "address": address, "currency": currency,
            "condition": condition, "amount": amount, "description": description,
            "service": service, "created_at": monitor.created_at})
    return monitor


async def page(db: AsyncEngine, *, address: str | None, currency: str | None,
               before: str | None, limit: int) -> tuple[list[Monitor], str | None]:
    rows, next_id = await repository.monitors_page(db, address, currency, before, limit)
    return [Monitor.of(r) for r in rows], next_id


async def delete(db: AsyncEngine, monitor_id: str) -> None:
    async with db.begin() as conn:
        if not await repository.delete_monitor(conn, monitor_id):
            raise NotFound(f"no balance monitor {monitor_id!r}")
