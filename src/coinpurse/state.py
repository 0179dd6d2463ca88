"""The running app's parts, handed to routes, services and jobs (no web framework here).

``open_state`` builds them for ``coinpurse serve`` and ``coinpurse worker`` alike, and
``close_state`` takes them down in the reverse order.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.auth.keycache import KeyCache
from coinpurse.auth.tokens import TokenVerifier
from coinpurse.bonuses.service import SignupWatch
from coinpurse.config import Settings
from coinpurse.core.cluster.reads import ReadRouter
from coinpurse.core.db import create_engine
from coinpurse.events.live import Hub
from coinpurse.events.service import Outbox, Wakeup
from coinpurse.http.ratelimit import RateLimits
from coinpurse.ledger.service import Ledger

log = logging.getLogger("coinpurse")


@dataclass
class AppState:
    settings: Settings
    db: AsyncEngine
    ledger: Ledger
    verifier: TokenVerifier
    rate_limits: RateLimits
    key_cache: KeyCache
    wakeup: Wakeup
    live: Hub  # this process's live streams (SSE, WebSocket)
    # Reads that a standby may serve (COINPURSE_READ_DATABASE_URL; core.cluster.reads).
    reads: ReadRouter
    # The ledger's committers' own connections (PostgreSQL; else ``db``): see open_state.
    ledger_db: AsyncEngine | None = None


async def open_state(settings: Settings, *, committers: int | None = None) -> AppState:
    db = create_engine(settings.database_url, pool_size=settings.db_pool_size,
                       options=settings.db_options)
    read_db = create_engine(settings.read_database_url, pool_size=settings.db_pool_size,
                            options=settings.db_options) if settings.read_database_url else None
    committer_count = committers or settings.committer_count
    # On PostgreSQL the committers get their own pool, one connection each, on which every
    # statement is planned for its parameters (DbOptions.custom_plans): a batch's tables
    # grow fast, and a cached generic plan made while one was nearly empty (a sequential
    # scan of the idempotency keys) stayed until autovacuum analyzed it again.
    ledger_db = None if settings.is_sqlite else create_engine(
        settings.database_url, pool_size=committer_count,
        options=dataclasses.replace(settings.db_options, custom_plans=True))
    ledger = Ledger(
        ledger_db or db,
        may_go_negative=settings.may_go_negative,
        idempotency_ttl_s=settings.idempotency_ttl_s,
        batch_max=settings.batch_max,
        committers=committer_count,
        queue_max=settings.ledger_queue_max,
        retry_s=settings.db_retry_s,
    )
    verifier = TokenVerifier(
        secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        public_key=settings.jwt_public_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    key_cache = KeyCache()
    wakeup = Wakeup()
    ledger.add_hook(Outbox(wakeup))  # every batch writes its events in its own commit
    ledger.add_hook(SignupWatch())  # a user's first wallet queues their sign-up bonuses
    state = AppState(settings=settings, db=db, ledger=ledger, verifier=verifier,
                     rate_limits=RateLimits(settings), key_cache=key_cache, wakeup=wakeup,
                     live=Hub(db, settings, wakeup), reads=ReadRouter(db, read_db),
                     ledger_db=ledger_db)
    key_cache.start(*settings.direct_db)
    await ledger.start()
    return state


async def close_state(state: AppState, *, drain_s: float = 0) -> None:
    """Commit what the ledger has queued (at most ``drain_s``), then close everything."""
    if drain_s > 0:
        await state.ledger.drain(drain_s)
    await state.ledger.stop()
    await state.key_cache.stop()
    if state.ledger_db is not None:
        await state.ledger_db.dispose()
    await state.db.dispose()
    if state.reads.standby is not None:
        await state.reads.standby.dispose()
