"""Per-service API keys. Only a SHA-256 of each key is stored; the key is shown once.

Keys carry 256 random bits, so a fast hash is enough (no password stretching needed) and the
lookup is one indexed read.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.auth.scopes import allows, parse_scopes
from coinpurse.auth.tables import api_keys
from coinpurse.core.db import after_commit
from coinpurse.core.errors import Forbidden, NotFound

KEY_PREFIX = "cpk_"
# PostgreSQL channel: every change to a key is announced, so servers can cache keys safely.
CHANGES_CHANNEL = "coinpurse_api_keys"
SERVICE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ServiceKey:
    id: str
    service: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    key_prefix: str = ""
    expires_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        return allows(self.scopes, scope)

    def require(self, scope: str) -> None:
        if not allows(self.scopes, scope):
            raise Forbidden(f"this key lacks the scope {scope!r}", required_scope=scope)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "service": self.service,
            "scopes": list(self.scopes),
            "key_prefix": self.key_prefix,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


# Coinpurse's own flows post as these services: a key of the same name would share their
# accounts (service:adjustments, service:promotions) and their holds (withdrawals).
RESERVED_SERVICES = frozenset({"adjustments", "payments", "promotions", "withdrawals"})


def check_service_name(name: str) -> str:
    if not SERVICE_RE.match(name):
        raise ValueError(
            "service names are 1-64 characters: lowercase letters, digits, - and _"
        )
    if name in RESERVED_SERVICES:
        raise ValueError(f"{name!r} is reserved for Coinpurse's own flows; pick another name")
    return name


async def create_key(conn: AsyncConnection, service: str, scopes: str,
                     created_by: str | None = None) -> tuple[ServiceKey, str]:
    """Store a new key; return it with the secret, which is never retrievable again."""
    check_service_name(service)
    parsed = parse_scopes(scopes)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ServiceKey(
        id="key_" + secrets.token_hex(8),
        service=service,
        scopes=parsed,
        created_at=datetime.now(UTC),
        key_prefix=secret[:12],
    )
    await conn.execute(
        api_keys.insert().values(
            id=key.id, service=key.service, scopes=" ".join(key.scopes),
            key_hash=hash_key(secret), key_prefix=key.key_prefix, created_at=key.created_at,
            created_by=created_by,
        )
    )
    return key, secret


async def authenticate(conn: AsyncConnection, secret: str) -> ServiceKey | None:
    if not secret.startswith(KEY_PREFIX) or len(secret) > 128:
        return None
    return await lookup(conn, hash_key(secret))


async def lookup(conn: AsyncConnection, key_hash: str) -> ServiceKey | None:
    row = (
        await conn.execute(
            select(api_keys).where(api_keys.c.key_hash == key_hash,
                                   api_keys.c.revoked_at.is_(None))
        )
    ).first()
    if row is None or (row.expires_at is not None and row.expires_at <= datetime.now(UTC)):
        return None
    return _row_to_key(row)


async def _announce(conn: AsyncConnection, key_id: str) -> None:
    """Tell every server to forget cached keys, once this transaction has committed."""
    if conn.dialect.name == "postgresql":  # NOTIFY is delivered at commit
        await conn.execute(text("SELECT pg_notify(:c, :k)"), {"c": CHANGES_CHANNEL, "k": key_id})
    else:
        from coinpurse.auth.keycache import announce_committed

        url = conn.engine.url.render_as_string(hide_password=False)
        after_commit(conn, lambda: announce_committed(url))


async def rotate_key(conn: AsyncConnection, key_id: str, grace_s: int,
                     rotated_by: str | None = None) -> tuple[ServiceKey, str, ServiceKey]:
    """A new key with the same service and scopes; the old one works ``grace_s`` more."""
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    now = datetime.now(UTC)
    if row is None or row.revoked_at is not None or (
            row.expires_at is not None and row.expires_at <= now):
        raise NotFound(f"no active key {key_id!r}")
    new, secret = await create_key(conn, row.service, row.scopes, created_by=rotated_by)
    until = now + timedelta(seconds=grace_s)
    if row.expires_at is None or row.expires_at > until:
        await conn.execute(update(api_keys).where(api_keys.c.id == key_id)
                           .values(expires_at=until))
        await _announce(conn, key_id)
    old = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).one()
    return new, secret, _row_to_key(old)


async def list_keys(conn: AsyncConnection) -> list[ServiceKey]:
    rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at))).all()
    return [_row_to_key(r) for r in rows]


async def revoke_key(conn: AsyncConnection, key_id: str) -> ServiceKey:
    now = datetime.now(UTC)
    await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    if row is None:
        raise NotFound(f"no key {key_id!r}")
    await _announce(conn, key_id)
    return _row_to_key(row)


def _row_to_key(row: Row[Any]) -> ServiceKey:
    return ServiceKey(
        id=row.id,
        service=row.service,
        scopes=tuple(row.scopes.split()),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        key_prefix=row.key_prefix,
        expires_at=row.expires_at,
    )
