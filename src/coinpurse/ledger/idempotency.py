"""Idempotency keys: stored in the same commit as the money movement they answer for.

A key lives in a scope (``service:<name>``, later ``user:<id>``). The row holds a hash of the
request and the response that was sent, so a retry replays it byte for byte. While a request
runs, a retry gets ``idempotency_key_in_use``: inside one process from an in-memory set, across
PostgreSQL processes from a transaction-scoped advisory lock that is tried, never waited on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import and_, delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.core.db import array_rows, keys_match
from coinpurse.ledger.tables import idempotency_keys

KEY_MAX_CHARS = 255


@dataclass(frozen=True, slots=True)
class Claim:
    scope: str
    key: str
    request_hash: str

    @property
    def ident(self) -> tuple[str, str]:
        return (self.scope, self.key)

    @property
    def lock_id(self) -> int:
        digest = hashlib.blake2b(
            f"{len(self.scope)}:{self.scope}{self.key}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Existing:
    request_hash: str
    response: StoredResponse


def claim(scope: str, key: str, operation: str, payload: Any) -> Claim:
    """A claim on ``key`` in ``scope`` for this exact request."""
    return Claim(scope=scope, key=key, request_hash=request_hash(operation, payload))


def request_hash(operation: str, payload: Any) -> str:
    """Hash of what was asked, independent of JSON key order and white space."""
    return hashlib.sha256(
        orjson.dumps({"op": operation, "body": payload}, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


async def try_lock(conn: AsyncConnection, claims: Sequence[Claim]) -> set[tuple[str, str]]:
    """Take each claim's advisory lock if free; return the claims another process holds."""
    if not claims or conn.dialect.name != "postgresql":
        return set()
    ids = [c.lock_id for c in claims]
    rows = (
        await conn.execute(
            text(
                "SELECT t.ord, pg_try_advisory_xact_lock(t.k) AS got "
                "FROM unnest(CAST(:ids AS BIGINT[])) WITH ORDINALITY AS t(k, ord)"
            ),
            {"ids": ids},
        )
    ).all()
    return {claims[r.ord - 1].ident for r in rows if not r.got}


_FIELDS = select(idempotency_keys.c.scope, idempotency_keys.c.key,
                 idempotency_keys.c.request_hash, idempotency_keys.c.status_code,
                 idempotency_keys.c.response_body)
_WANTED = array_rows(scope="scopes", key="keys")
# PostgreSQL: every batch asks, so it is compiled once, arrays bound (also a part of
# store.find_and_lock's statement).
PG_FIND = _FIELDS.join_from(idempotency_keys, _WANTED, and_(
    idempotency_keys.c.scope == _WANTED.c.scope, idempotency_keys.c.key == _WANTED.c.key))


async def find(conn: AsyncConnection, claims: Sequence[Claim]) -> dict[tuple[str, str], Existing]:
    if not claims:
        return {}
    if conn.dialect.name == "postgresql":  # every batch asks: compiled once, arrays bound
        rows = (await conn.execute(PG_FIND, {"scopes": [c.scope for c in claims],
                                              "keys": [c.key for c in claims]})).all()
    else:
        rows = (await conn.execute(_FIELDS.where(keys_match(
            idempotency_keys.c.key, idempotency_keys.c.scope,
            [(c.key, c.scope) for c in claims])))).all()
    return {
        (r.scope, r.key): Existing(r.request_hash, StoredResponse(r.status_code,
                                                                  bytes(r.response_body)))
        for r in rows
    }


_PG_STORE = text(
    "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response_body, "
    "created_at, expires_at) SELECT t.s, t.k, t.h, t.st, t.b, :now, :exp FROM unnest("
    "CAST(:s AS TEXT[]), CAST(:k AS TEXT[]), CAST(:h AS TEXT[]), CAST(:st AS SMALLINT[]), "
    "CAST(:b AS BYTEA[])) AS t(s, k, h, st, b)"
)


async def store(
    conn: AsyncConnection,
    done: Sequence[tuple[Claim, StoredResponse]],
    *,
    now: datetime,
    expires_at: datetime,
) -> None:
    if not done:
        return
    if conn.dialect.name == "postgresql":
        await conn.execute(_PG_STORE, {
            "s": [c.scope for c, _ in done], "k": [c.key for c, _ in done],
            "h": [c.request_hash for c, _ in done], "st": [r.status for _, r in done],
            "b": [r.body for _, r in done], "now": now, "exp": expires_at})
        return
    await conn.execute(
        idempotency_keys.insert(),
        [
            {"scope": c.scope, "key": c.key, "request_hash": c.request_hash,
             "status_code": r.status, "response_body": r.body, "created_at": now,
             "expires_at": expires_at}
            for c, r in done
        ],
    )


async def purge_expired(conn: AsyncConnection, now: datetime, limit: int = 1000) -> int:
    """Delete expired keys, a bounded number at a time so no purge holds locks for long."""
    victims = (
        select(idempotency_keys.c.scope, idempotency_keys.c.key)
        .where(idempotency_keys.c.expires_at < now)
        .limit(limit)
    )
    keys = (await conn.execute(victims)).all()
    if not keys:
        return 0
    await conn.execute(
        delete(idempotency_keys).where(
            keys_match(idempotency_keys.c.key, idempotency_keys.c.scope,
                       [(k.key, k.scope) for k in keys]),
            idempotency_keys.c.expires_at < now,
        )
    )
    return len(keys)


async def purge_all_expired(db: AsyncEngine, now: datetime | None = None) -> int:
    """Purge in bounded chunks, one short transaction each, until none is left."""
    now = now or datetime.now(UTC)
    total = 0
    while True:
        async with db.begin() as conn:
            purged = await purge_expired(conn, now)
        total += purged
        if purged == 0:
            return total
