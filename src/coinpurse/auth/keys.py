"""Per-service API keys. Only a SHA-256 of each key is stored; the key is shown once.

Keys carry 256 random bits, so a fast hash is enough (no password stretching needed) and the
lookup is one indexed read. Every change is announced (``repository.announce_key_change``)
so that servers caching keys (``keycache``) forget them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.auth import repository
from coinpurse.auth.model import ServiceKey as ServiceKey
from coinpurse.auth.repository import CHANGES_CHANNEL as CHANGES_CHANNEL
from coinpurse.auth.scopes import parse_scopes
from coinpurse.core.errors import NotFound

KEY_PREFIX = "cpk_"
SERVICE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Coinpurse's own flows post as these services: a key of the same name would share their
# accounts (service:adjustments, service:promotions) and their holds (withdrawals).
RESERVED_SERVICES = frozenset({"adjustments", "payments", "promotions", "withdrawals"})


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


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
    key = ServiceKey(id="key_" + secrets.token_hex(8), service=service, scopes=parsed,
                     created_at=datetime.now(UTC), key_prefix=secret[:12])
    await repository.insert_key(conn, key, hash_key(secret), created_by)
    return key, secret


async def authenticate(conn: AsyncConnection, secret: str) -> ServiceKey | None:
    if not secret.startswith(KEY_PREFIX) or len(secret) > 128:
        return None
    return await lookup(conn, hash_key(secret))


async def lookup(conn: AsyncConnection, key_hash: str) -> ServiceKey | None:
    """The working key with this hash: not revoked, not past a rotation's grace period."""
    key = await repository.unrevoked_key_by_hash(conn, key_hash)
    if key is None or (key.expires_at is not None and key.expires_at <= datetime.now(UTC)):
        return None
    return key


async def rotate_key(conn: AsyncConnection, key_id: str, grace_s: int,
                     rotated_by: str | None = None) -> tuple[ServiceKey, str, ServiceKey]:
    """A new key with the same service and scopes; the old one works ``grace_s`` more."""
    old = await repository.key_by_id(conn, key_id)
    now = datetime.now(UTC)
    if old is None or old.revoked_at is not None or (
            old.expires_at is not None and old.expires_at <= now):
        raise NotFound(f"no active key {key_id!r}")
    new, secret = await create_key(conn, old.service, " ".join(old.scopes),
                                   created_by=rotated_by)
    until = now + timedelta(seconds=grace_s)
    if old.expires_at is None or old.expires_at > until:
        await repository.set_key_expiry(conn, key_id, until)
        await repository.announce_key_change(conn, key_id)
    previous = await repository.key_by_id(conn, key_id)
    assert previous is not None
    return new, secret, previous


async def list_keys(conn: AsyncConnection) -> list[ServiceKey]:
    return await repository.all_keys(conn)


async def revoke_key(conn: AsyncConnection, key_id: str) -> ServiceKey:
    await repository.revoke_key(conn, key_id, datetime.now(UTC))
    key = await repository.key_by_id(conn, key_id)
    if key is None:
        raise NotFound(f"no key {key_id!r}")
    await repository.announce_key_change(conn, key_id)
    return key
