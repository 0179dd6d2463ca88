"""Which database errors are the cluster's (retry later), and which are ours (a bug).

Transient: the connection dropped or could not be made (a failover, a restart, a network
fault), a timeout, the server shutting down or starting up, a write that reached a standby
(``read_only_sql_transaction``, the old primary after a failover), and the two errors
PostgreSQL asks callers to retry (serialization failure, deadlock). Everything else, an
integrity error for instance, is not cured by waiting.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext

# SQLSTATEs: 08xxx connection exceptions; 57P01-57P03 admin/crash shutdown, cannot connect
# now; 25006 read-only transaction; 40001 serialization failure; 40P01 deadlock;
# 53300 too many connections.
TRANSIENT_STATES = frozenset({"57P01", "57P02", "57P03", "25006", "40001", "40P01", "53300"})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None)
        todo += [e.__cause__, e.__context__, orig if isinstance(orig, BaseException) else None]


def sqlstate(exc: BaseException) -> str | None:
    for e in _chain(exc):
        state = getattr(e, "sqlstate", None)
        if isinstance(state, str) and state:
            return state
    return None


_NETWORK_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED,
                             errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT,
                             errno.EPIPE, errno.ENETDOWN, errno.EHOSTDOWN})


def _network_error(e: BaseException) -> bool:
    """Refused, reset, unreachable, unresolvable, timed out: not a file or a bug."""
    if isinstance(e, ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(e, OSError):
        # asyncio reports several failed addresses as one plain OSError
        return e.errno in _NETWORK_ERRNOS or "Connect call failed" in str(e)
    return False


def is_transient(exc: BaseException) -> bool:
    """True when retrying later (on a new connection) may succeed."""
    for e in _chain(exc):
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, asyncpg.ConnectionDoesNotExistError | asyncpg.PostgresConnectionError):
            return True
        if isinstance(e, asyncpg.InterfaceError) and "closed" in str(e):
            return True
        # No host of a multi-host URL is the primary yet: a failover is under way.
        if isinstance(e, asyncpg.exceptions.TargetServerAttributeNotMatched):
            return True
        if _network_error(e):
            return True
    state = sqlstate(exc)
    return state is not None and (state.startswith("08") or state in TRANSIENT_STATES)


# Faults after which the connection itself is unusable or points at the wrong server, beyond
# what the driver reports as a disconnect: a timeout mid-statement (the socket's state is
# unknown), a standby or demoted primary (read-only), a server shutting down.
_DISCARD_STATES = frozenset({"25006", "57P01", "57P02", "57P03"})


def mark_disconnect(ctx: ExceptionContext) -> None:
    """SQLAlchemy ``handle_error`` hook: treat such faults as disconnects, so SQLAlchemy
    throws the connection away and invalidates every pooled connection made before it
    (they point at the same dead or demoted server), instead of handing them out again."""
    exc = ctx.original_exception
    if ctx.is_disconnect or not is_transient(exc):
        return
    state = sqlstate(exc)
    if _network_error(exc) or (state is not None and (
            state.startswith("08") or state in _DISCARD_STATES)):
        ctx.is_disconnect = True
