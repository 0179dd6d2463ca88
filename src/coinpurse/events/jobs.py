"""The events domain's background work, in ``coinpurse serve`` and ``coinpurse worker``:

* ``events-retention``: events past their retention are deleted;
* ``events-listen``: hears other processes' commits (LISTEN, or Redis) and wakes readers;
* ``events-live``: the pump of this process's live streams;
* with ``COINPURSE_EVENTS_JOBS`` (default true), the log's consumers and senders:
  ``webhooks-fanout``, ``webhooks-send``, ``notifications``, ``email-send``. Each is safe
  to run in several processes at once (cursor locks, leases).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from coinpurse.core.jobs import Job
from coinpurse.events import consumer, mail, notifications, webhooks
from coinpurse.events.live import Bus
from coinpurse.events.service import purge
from coinpurse.state import AppState

PURGE_EVERY_S = 3600
RESTART_S = 1.0  # after a failed pass of a job that waits for work itself
EMAIL_EVERY_S = 0.5
CONSUMER_GAP_S = 0.25


def _paced(step: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
    """A job that runs back to back (it waits for work itself) pauses after a failure."""

    async def run() -> int:
        try:
            return await step()
        except Exception:
            await asyncio.sleep(RESTART_S)
            raise

    return run


def jobs(state: AppState) -> list[Job]:
    settings, db, wakeup = state.settings, state.db, state.wakeup

    async def expire() -> int:
        return await purge(db, settings.events_retention_days)

    found = [Job("events-retention", expire, PURGE_EVERY_S),
             Job("events-live", state.live.run, RESTART_S)]
    listen_url, listen_options = settings.direct_db
    bus = Bus(listen_url, settings, wakeup, listen_options)
    if bus.needed:
        found.append(Job("events-listen", bus.run, RESTART_S))
    if not settings.events_jobs:
        return found

    fanout = webhooks.fanout(settings)
    notify, notify_types = notifications.consumer(
        settings, builtin_accounts=settings.auth == "builtin")
    sender = webhooks.Sender(db, settings)
    idle_s = min(0.5, max(settings.webhook_backoff_base_s, 0.05))

    # Woken by commits, a consumer still makes at most one pass per CONSUMER_GAP_S: under
    # load a pass takes many batches' events at once instead of one transaction per commit.
    async def fan_out() -> int:
        seen = wakeup.generation
        n = await consumer.drain(db, webhooks.FANOUT_CURSOR, fanout,
                                 wanted=await webhooks.any_enabled(db))
        await asyncio.sleep(CONSUMER_GAP_S)
        await wakeup.wait(settings.live_poll_s, since=seen)
        return n

    async def notify_users() -> int:
        seen = wakeup.generation
        n = await consumer.drain(db, notifications.CURSOR, notify, types=notify_types)
        await asyncio.sleep(CONSUMER_GAP_S)
        await wakeup.wait(settings.live_poll_s, since=seen)
        return n

    async def send() -> int:
        n = await sender.send_due()
        if n == 0:
            await asyncio.sleep(idle_s)
        return n

    async def send_mail() -> int:
        return await mail.send_due(db, settings)

    found += [Job("webhooks-fanout", _paced(fan_out), 0), Job("webhooks-send", _paced(send), 0),
              Job("notifications", _paced(notify_users), 0)]
    if settings.smtp_url is not None:
        found.append(Job("email-send", send_mail, EMAIL_EVERY_S))
    return found
