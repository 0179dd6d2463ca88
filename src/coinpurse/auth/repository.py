"""The only SQL on the auth tables: users, refresh tokens, service API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.auth.model import Credentials, RefreshToken, ServiceKey, User
from coinpurse.auth.tables import api_keys, refresh_tokens, users
from coinpurse.core.db import after_commit, is_postgres

# PostgreSQL channel: every change to a key is announced, so servers can cache keys safely.
CHANGES_CHANNEL = "coinpurse_api_keys"


# --- users ----------------------------------------------------------------------------------

def _user(row: Row[Any]) -> User:
    return User(row.id, row.email, row.role, bool(row.totp_enabled), row.created_at)


def _credentials(row: Row[Any]) -> Credentials:
    return Credentials(_user(row), row.password_hash, row.totp_secret,
                       tuple(orjson.loads(row.recovery_codes_json or "[]")),
                       row.disabled_at is not None)


async def email_taken(conn: AsyncConnection, email: str) -> bool:
    return (await conn.execute(select(users.c.id).where(users.c.email == email))).first() \
        is not None


async def insert_user(conn: AsyncConnection, user: User, password_hash: str) -> None:
    await conn.execute(users.insert().values(
        id=user.id, email=user.email, password_hash=password_hash, role=user.role,
        created_at=user.created_at))


async def set_role(conn: AsyncConnection, email: str, role: str) -> User | None:
    await conn.execute(update(users).where(users.c.email == email).values(role=role))
    row = (await conn.execute(select(users).where(users.c.email == email))).first()
    return _user(row) if row else None


async def credentials_by_id(conn: AsyncConnection, user_id: str) -> Credentials | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _credentials(row) if row else None


async def credentials_by_email(conn: AsyncConnection, email: str) -> Credentials | None:
    row = (await conn.execute(select(users).where(users.c.email == email))).first()
    return _credentials(row) if row else None


async def set_password_hash(conn: AsyncConnection, user_id: str, password_hash: str) -> None:
    await conn.execute(update(users).where(users.c.id == user_id)
                       .values(password_hash=password_hash))


async def set_recovery_codes(conn: AsyncConnection, user_id: str,
                             hashes: tuple[str, ...]) -> None:
    await conn.execute(update(users).where(users.c.id == user_id)
                       .values(recovery_codes_json=orjson.dumps(list(hashes)).decode()))


async def set_totp_secret(conn: AsyncConnection, user_id: str, secret: str) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(totp_secret=secret))


async def enable_totp(conn: AsyncConnection, user_id: str, hashes: tuple[str, ...]) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(
        totp_enabled=True, recovery_codes_json=orjson.dumps(list(hashes)).decode()))


async def disable_totp(conn: AsyncConnection, user_id: str) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(
        totp_enabled=False, totp_secret=None, recovery_codes_json=None))


# --- refresh tokens -------------------------------------------------------------------------

async def insert_refresh_token(conn: AsyncConnection, *, token_id: str, user_id: str,
                               family_id: str, token_hash: str, mfa: bool, created_at: datetime,
                               expires_at: datetime) -> None:
    await conn.execute(refresh_tokens.insert().values(
        id=token_id, user_id=user_id, family_id=family_id, token_hash=token_hash, mfa=mfa,
        created_at=created_at, expires_at=expires_at))


async def refresh_token(conn: AsyncConnection, token_hash: str) -> RefreshToken | None:
    row = (await conn.execute(select(refresh_tokens)
                              .where(refresh_tokens.c.token_hash == token_hash))).first()
    if row is None:
        return None
    return RefreshToken(row.id, row.user_id, row.family_id, bool(row.mfa), row.expires_at)


async def spend_refresh_token(conn: AsyncConnection, token_id: str, now: datetime) -> bool:
    """Mark the token used, if it is neither used nor revoked; whether this call did."""
    spent = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.id == token_id, refresh_tokens.c.used_at.is_(None),
               refresh_tokens.c.revoked_at.is_(None))
        .values(used_at=now))
    return spent.rowcount == 1


async def family_active(conn: AsyncConnection, family_id: str) -> bool:
    t = refresh_tokens.c
    row = (await conn.execute(select(t.id).where(
        t.family_id == family_id, t.revoked_at.is_(None)).limit(1))).first()
    return row is not None


async def revoke_family(conn: AsyncConnection, family_id: str, now: datetime) -> None:
    await conn.execute(update(refresh_tokens)
                       .where(refresh_tokens.c.family_id == family_id,
                              refresh_tokens.c.revoked_at.is_(None))
                       .values(revoked_at=now))


# --- service keys ---------------------------------------------------------------------------

def _key(row: Row[Any]) -> ServiceKey:
    return ServiceKey(id=row.id, service=row.service, scopes=tuple(row.scopes.split()),
                      created_at=row.created_at, revoked_at=row.revoked_at,
                      key_prefix=row.key_prefix, expires_at=row.expires_at)


async def insert_key(conn: AsyncConnection, key: ServiceKey, key_hash: str,
                     created_by: str | None) -> None:
    await conn.execute(api_keys.insert().values(
        id=key.id, service=key.service, scopes=" ".join(key.scopes), key_hash=key_hash,
        key_prefix=key.key_prefix, created_at=key.created_at, created_by=created_by))


async def unrevoked_key_by_hash(conn: AsyncConnection, key_hash: str) -> ServiceKey | None:
    row = (await conn.execute(select(api_keys).where(
        api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)))).first()
    return _key(row) if row else None


async def key_by_id(conn: AsyncConnection, key_id: str) -> ServiceKey | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    return _key(row) if row else None


async def all_keys(conn: AsyncConnection) -> list[ServiceKey]:
    rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at))).all()
    return [_key(r) for r in rows]


async def set_key_expiry(conn: AsyncConnection, key_id: str, expires_at: datetime) -> None:
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id)
                       .values(expires_at=expires_at))


async def revoke_key(conn: AsyncConnection, key_id: str, now: datetime) -> None:
    await conn.execute(update(api_keys)
                       .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                       .values(revoked_at=now))


async def announce_key_change(conn: AsyncConnection, key_id: str) -> None:
    """Tell every server to forget cached keys, once this transaction has committed."""
    if is_postgres(conn):  # NOTIFY is delivered at commit
        await conn.execute(text("SELECT pg_notify(:c, :k)"), {"c": CHANGES_CHANNEL, "k": key_id})
    else:
        from coinpurse.auth.keycache import announce_committed

        url = conn.engine.url.render_as_string(hide_password=False)
        after_commit(conn, lambda: announce_committed(url))
