"""What GraphQL needs beyond the domains' services: a subscription's live messages, from
the events domain's per-process pump (``events.live.Hub``: it follows the event log, woken
by this process's commits, the other processes' notices and a poll), so a credit made
through REST, by any process, reaches a subscriber; with the hub's caps on streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

from coinpurse.events.live import Hub, Message


async def messages(hub: Hub, user_id: str, event: str,
                   heartbeat_s: float) -> AsyncIterator[Message]:
    """The user's messages of one kind (``balance.updated``, ``notification.created``)
    from now on. A subscriber too slow to keep up is dropped by the hub: its subscription
    ends, and the client subscribes again (and reloads what it shows)."""
    sub = await hub.subscribe(user_id, None)
    try:
        while not sub.dropped:
            message = await sub.next(heartbeat_s)
            if message is not None and message.event == event:
                yield message
    finally:
        hub.unsubscribe(sub)
