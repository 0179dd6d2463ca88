"""Users' notifications: a consumer of the log makes one per (event, user) for the event
types configured (``COINPURSE_NOTIFY_EVENTS``), exactly once, and in the same transaction
writes a ``notification.created`` event (so the live stream carries it) and, with
``COINPURSE_SMTP_URL`` and built-in accounts, an e-mail to send (``mail.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.auth import service as auth_service
from coinpurse.core.clock import iso, utcnow
from coinpurse.core.errors import NotFound
from coinpurse.core.ids import new_id
from coinpurse.events import repository
from coinpurse.events.consumer import Handler
from coinpurse.events.repository import StoredEvent
from coinpurse.events.service import TypeFilter, emit
from coinpurse.events.settings import EventSettings

CURSOR = "notifications"


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    user_id: str
    event_id: int
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> Notification:
        return cls(row.id, row.user_id, row.event_id, row.kind, row.title, row.body,
                   orjson.loads(row.data_json), row.created_at, row.read_at)

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "user_id": self.user_id, "kind": self.kind,
                "title": self.title, "body": self.body, "data": self.data,
                "event_id": str(self.event_id), "created_at": iso(self.created_at),
                "read_at": iso(self.read_at)}


def _money(amount: Any, currency: Any) -> str:
    return f"{amount} {currency}"


# For each notifiable event type: whom it concerns, and its title and text.
Render = Callable[[dict[str, Any]], tuple[str, str, str]]
RENDER: dict[str, Render] = {
    "topup.succeeded": lambda d: (d["user_id"], "Top-up received",
                                  f"{_money(d['amount'] + d['bonus'], d['currency'])} "
                                  "were added to your wallet."),
    "topup.failed": lambda d: (d["user_id"], "Top-up failed",
                               f"Your top-up of {_money(d['amount'], d['currency'])} did "
                               "not go through; nothing was charged to your wallet."),
    "topup.refunded": lambda d: (d["user_id"], "Top-up refunded",
                                 f"Your top-up of {_money(d['amount'], d['currency'])} was "
                                 "refunded and taken back from your wallet."),
    "gift.sent": lambda d: (d["to_user_id"], "You received a gift",
                            f"{d['from_user_id']} sent you "
                            + (f"a {d['gift_type']}" if d.get("gift_type")
                               else _money(d["amount"], d["currency"]))
                            + f": {_money(d['receiver_amount'], d['currency'])} for you."),
    "withdrawal.requested": lambda d: (d["user_id"], "Withdrawal requested",
                                       f"Your withdrawal of {_money(d['amount'], d['currency'])}"
                                       " is waiting for review."),
    "withdrawal.paid": lambda d: (d["user_id"], "Withdrawal paid",
                                  f"Your withdrawal of {_money(d['amount'], d['currency'])} "
                                  "was paid out."),
    "withdrawal.rejected": lambda d: (d["user_id"], "Withdrawal rejected",
                                      f"Your withdrawal of {_money(d['amount'], d['currency'])}"
                                      f" was rejected: {d.get('reason') or 'no reason given'}."
                                      " The amount is back in your wallet."),
    "withdrawal.cancelled": lambda d: (d["user_id"], "Withdrawal cancelled",
                                       f"Your withdrawal of {_money(d['amount'], d['currency'])}"
                                       " was cancelled; the amount is back in your wallet."),
    "withdrawal.expired": lambda d: (d["user_id"], "Withdrawal expired",
                                     f"Your withdrawal of {_money(d['amount'], d['currency'])}"
                                     " expired before review; the amount is back in your "
                                     "wallet."),
    "kyc.approved": lambda d: (d["user_id"], "Verification approved",
                               f"You are now verified to tier {d['tier']}."),
    "kyc.rejected": lambda d: (d["user_id"], "Verification rejected",
                               f"Your verification to tier {d['tier']} was rejected: "
                               f"{d.get('reason') or 'no reason given'}."),
}


def consumer(settings: EventSettings, *, builtin_accounts: bool) -> tuple[Handler, TypeFilter]:
    """The consumer's handler, and the event types it reads. E-mails go to built-in
    accounts (behind an outside auth system Coinpurse knows no addresses: its notifier
    takes webhooks instead)."""
    wanted = tuple(sorted(settings.notify_types))
    send_mail = settings.smtp_url is not None and builtin_accounts

    async def handle(conn: AsyncConnection, found: list[StoredEvent]) -> None:
        now = utcnow()
        made: list[Notification] = []
        for event in found:
            user_id, title, body = RENDER[event.type](event.data)
            made.append(Notification(new_id(), str(user_id), event.id, event.type,
                                     title[:255], body[:1000], event.data, now, None))
        inserted = set(await repository.insert_notifications(conn, [
            {"id": n.id, "user_id": n.user_id, "event_id": n.event_id, "kind": n.kind,
             "title": n.title, "body": n.body, "data_json": orjson.dumps(n.data).decode(),
             "created_at": now} for n in made]))
        mails = []
        for note in made:
            if note.id not in inserted:
                continue  # this (event, user) was notified before
            await emit(conn, "notification.created", note.view(), now)
            address = await auth_service.email_of(conn, note.user_id) if send_mail else None
            if address is not None:
                mails.append({"id": new_id(), "notification_id": note.id,
                              "to_address": address, "status": "pending", "attempts": 0,
                              "next_attempt_at": now, "created_at": now})
        await repository.insert_emails(conn, mails)

    return handle, TypeFilter(exact=wanted)


async def page(db: AsyncEngine, user_id: str, *, unread: bool, before: str | None,
               limit: int) -> tuple[list[Notification], str | None, int]:
    rows, next_id = await repository.notifications_page(db, user_id, unread, before, limit)
    async with db.connect() as conn:
        unread_count = await repository.unread_count(conn, user_id)
    return [Notification.of(r) for r in rows], next_id, unread_count


async def read(db: AsyncEngine, user_id: str, notification_id: str) -> Notification:
    """Mark one of the user's notifications read (again: no change)."""
    async with db.begin() as conn:
        row = await repository.mark_read(conn, user_id, notification_id, utcnow())
    if row is None:
        raise NotFound(f"no notification {notification_id!r}")
    return Notification.of(row)


async def read_all(db: AsyncEngine, user_id: str) -> int:
    async with db.begin() as conn:
        return await repository.mark_all_read(conn, user_id, utcnow())
