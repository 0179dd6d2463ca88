"""Built-in accounts: passwords (argon2id), access and refresh tokens, TOTP two-factor.

Refresh tokens are opaque, stored as SHA-256 hashes, and rotated on every use. Each sign-in
starts a *family*; presenting a token that was already used revokes the whole family, since
one of its copies must have been stolen. Unknown e-mails and wrong passwords take the same
path and the same time (a dummy argon2 verification), so sign-in reveals no accounts.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import orjson
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.auth.errors import (
    InvalidCredentials,
    InvalidMfaCode,
    MfaRequired,
    RefreshTokenReused,
)
from coinpurse.auth.tables import refresh_tokens, users
from coinpurse.auth.tokens import ROLES
from coinpurse.config import Settings
from coinpurse.core.errors import Unauthorized, ValidationFailed
from coinpurse.core.ids import new_id

PASSWORD_MIN = 10
PASSWORD_MAX = 256
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,63}$")
RECOVERY_CODES = 10
TOTP_ISSUER = "Coinpurse"

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    role: str
    totp_enabled: bool
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "role": self.role,
                "totp_enabled": self.totp_enabled,
                "created_at": self.created_at.isoformat().replace("+00:00", "Z")}


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    mfa: bool

    def as_dict(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "token_type": "bearer",
                "expires_in": self.expires_in, "refresh_token": self.refresh_token,
                "mfa": self.mfa, "user": self.user.as_dict()}


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise ValidationFailed("not an e-mail address", [
            {"loc": ["body", "email"], "msg": "not an e-mail address", "type": "value_error"}])
    return email


def check_password_policy(password: str, email: str) -> None:
    problem = None
    if len(password) < PASSWORD_MIN:
        problem = f"at least {PASSWORD_MIN} characters"
    elif len(password) > PASSWORD_MAX:
        problem = f"at most {PASSWORD_MAX} characters"
    elif password.lower() == email.lower() or len(set(password)) < 4:
        problem = "not your e-mail, and not a run of the same few characters"
    if problem:
        raise ValidationFailed(f"the password must be {problem}", [
            {"loc": ["body", "password"], "msg": problem, "type": "password_policy"}])


def _user(row: Row[Any]) -> User:
    return User(row.id, row.email, row.role, bool(row.totp_enabled), row.created_at)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def create_user(conn: AsyncConnection, email: str, password: str,
                      role: str = "user") -> User | None:
    """Create an account; None if the e-mail is taken (the caller must not say so)."""
    assert role in ROLES
    email = normalize_email(email)
    check_password_policy(password, email)
    password_hash = _hasher.hash(password)  # before the lookup: same time either way
    if (await conn.execute(select(users.c.id).where(users.c.email == email))).first():
        return None
    user = User(new_id(), email, role, False, datetime.now(UTC))
    await conn.execute(users.insert().values(
        id=user.id, email=email, password_hash=password_hash, role=role,
        created_at=user.created_at))
    return user


async def set_role(conn: AsyncConnection, email: str, role: str) -> User | None:
    assert role in ROLES
    await conn.execute(update(users).where(users.c.email == normalize_email(email))
                       .values(role=role))
    row = (await conn.execute(select(users).where(users.c.email == normalize_email(email)))
           ).first()
    return _user(row) if row else None


async def get_user(conn: AsyncConnection, user_id: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _user(row) if row and row.disabled_at is None else None


async def authenticate(conn: AsyncConnection, email: str, password: str,
                       totp_code: str | None, recovery_code: str | None) -> tuple[User, bool]:
    """Check password then second factor; returns the user and whether 2FA was passed."""
    try:
        email = normalize_email(email)
    except ValidationFailed:
        email = ""
    row = (await conn.execute(select(users).where(users.c.email == email))).first() \
        if email else None
    try:
        _hasher.verify(row.password_hash if row else _DUMMY_HASH, password)
        ok = row is not None and row.disabled_at is None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None:
        raise InvalidCredentials("wrong e-mail or password")
    if _hasher.check_needs_rehash(row.password_hash):
        await conn.execute(update(users).where(users.c.id == row.id)
                           .values(password_hash=_hasher.hash(password)))
    if not row.totp_enabled:
        return _user(row), False
    if totp_code is None and recovery_code is None:
        raise MfaRequired("this account uses two-factor authentication: send totp_code "
                          "or recovery_code")
    await verify_second_factor(conn, row, totp_code, recovery_code)
    return _user(row), True


async def verify_second_factor(conn: AsyncConnection, row: Row[Any], totp_code: str | None,
                               recovery_code: str | None) -> None:
    if totp_code is not None:
        if row.totp_secret and pyotp.TOTP(row.totp_secret).verify(totp_code, valid_window=1):
            return
        raise InvalidMfaCode("the two-factor code is not valid")
    codes: list[str] = orjson.loads(row.recovery_codes_json or "[]")
    digest = _sha((recovery_code or "").strip().lower())
    if digest not in codes:
        raise InvalidMfaCode("the recovery code is not valid or was already used")
    codes.remove(digest)
    await conn.execute(update(users).where(users.c.id == row.id)
                       .values(recovery_codes_json=orjson.dumps(codes).decode()))


def access_token(settings: Settings, user: User, *, mfa: bool) -> str:
    assert settings.jwt_secret is not None
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": user.id, "role": user.role, "mfa": mfa, "typ": "access",
        "iat": now, "exp": now + timedelta(seconds=settings.access_token_ttl_s),
        "jti": secrets.token_hex(8),
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


async def start_session(conn: AsyncConnection, settings: Settings, user: User, *, mfa: bool,
                        family_id: str | None = None) -> Session:
    raw = "cpr_" + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    await conn.execute(refresh_tokens.insert().values(
        id=new_id(), user_id=user.id, family_id=family_id or new_id(),
        token_hash=_sha(raw), mfa=mfa, created_at=now,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_s)))
    return Session(user, access_token(settings, user, mfa=mfa), raw,
                   settings.access_token_ttl_s, mfa)


async def refresh(conn: AsyncConnection, settings: Settings, raw: str) -> Session:
    """Rotate: the old token is spent, a new one of the same family is issued."""
    row = (await conn.execute(
        select(refresh_tokens).where(refresh_tokens.c.token_hash == _sha(raw)))).first()
    if row is None:
        raise Unauthorized("unknown refresh token")
    now = datetime.now(UTC)
    spent = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.id == row.id, refresh_tokens.c.used_at.is_(None),
               refresh_tokens.c.revoked_at.is_(None))
        .values(used_at=now))
    if spent.rowcount != 1:  # the caller revokes the family in its own transaction
        raise RefreshTokenReused("this refresh token was already used; every session it "
                                 "belonged to is now signed out")
    if row.expires_at <= now:
        raise Unauthorized("the refresh token has expired; sign in again")
    user = await get_user(conn, row.user_id)
    if user is None:
        raise Unauthorized("the account is disabled")
    return await start_session(conn, settings, user, mfa=bool(row.mfa),
                               family_id=row.family_id)


async def revoke_family(conn: AsyncConnection, family_id: str) -> None:
    await conn.execute(update(refresh_tokens)
                       .where(refresh_tokens.c.family_id == family_id,
                              refresh_tokens.c.revoked_at.is_(None))
                       .values(revoked_at=datetime.now(UTC)))


async def revoke_family_of(conn: AsyncConnection, raw: str) -> None:
    row = (await conn.execute(select(refresh_tokens.c.family_id)
                              .where(refresh_tokens.c.token_hash == _sha(raw)))).first()
    if row is not None:
        await revoke_family(conn, row.family_id)


async def logout(conn: AsyncConnection, raw: str) -> str | None:
    row = (await conn.execute(select(refresh_tokens.c.family_id, refresh_tokens.c.user_id)
                              .where(refresh_tokens.c.token_hash == _sha(raw)))).first()
    if row is None:
        return None
    await revoke_family(conn, row.family_id)
    user_id: str = row.user_id
    return user_id


async def enroll_totp(conn: AsyncConnection, user: User) -> dict[str, str]:
    if user.totp_enabled:
        raise ValidationFailed("two-factor authentication is already on; disable it first")
    secret = pyotp.random_base32()
    await conn.execute(update(users).where(users.c.id == user.id).values(totp_secret=secret))
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)
    return {"secret": secret, "otpauth_uri": uri}


async def confirm_totp(conn: AsyncConnection, user: User, code: str) -> list[str]:
    row = (await conn.execute(select(users).where(users.c.id == user.id))).one()
    if row.totp_enabled:
        raise ValidationFailed("two-factor authentication is already on")
    if not row.totp_secret:
        raise ValidationFailed("enrol first: POST /api/v1/auth/2fa/enroll")
    if not pyotp.TOTP(row.totp_secret).verify(code, valid_window=1):
        raise InvalidMfaCode("the two-factor code is not valid")
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    await conn.execute(update(users).where(users.c.id == user.id).values(
        totp_enabled=True, recovery_codes_json=orjson.dumps([_sha(c) for c in codes]).decode()))
    return codes


async def disable_totp(conn: AsyncConnection, user: User, totp_code: str | None,
                       recovery_code: str | None) -> None:
    row = (await conn.execute(select(users).where(users.c.id == user.id))).one()
    if not row.totp_enabled:
        raise ValidationFailed("two-factor authentication is not on")
    await verify_second_factor(conn, row, totp_code, recovery_code)
    await conn.execute(update(users).where(users.c.id == user.id).values(
        totp_enabled=False, totp_secret=None, recovery_codes_json=None))
