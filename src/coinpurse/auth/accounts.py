"""Built-in accounts: passwords (argon2id), access and refresh tokens, TOTP two-factor.

Refresh tokens are opaque, stored as SHA-256 hashes, and rotated on every use. Each sign-in
starts a *family*; presenting a token that was already used revokes the whole family, since
one of its copies must have been stolen. Unknown e-mails and wrong passwords take the same
path and the same time (a dummy argon2 verification), so sign-in reveals no accounts.

These are the rules inside one unit of work: each function takes the caller's connection
(``service.AuthService`` opens the transactions, the CLI its own); the SQL is in
``repository``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.auth import repository
from coinpurse.auth.errors import (
    InvalidCredentials,
    InvalidMfaCode,
    MfaRequired,
    RefreshTokenReused,
)
from coinpurse.auth.model import Credentials, Session, TotpEnrolment, User
from coinpurse.auth.qr import qr_data_uri
from coinpurse.auth.settings import AuthSettings
from coinpurse.auth.tokens import ROLES
from coinpurse.core.errors import Unauthorized, ValidationFailed
from coinpurse.core.ids import new_id

PASSWORD_MIN = 10
PASSWORD_MAX = 256
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,63}$")
RECOVERY_CODES = 10
TOTP_ISSUER = "Coinpurse"

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


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


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def hash_new_password(email: str, password: str) -> tuple[str, str]:
    """The normalized e-mail and the password's argon2 hash, after the policy checks.

    argon2 is slow on purpose (tens of milliseconds of CPU and memory): it runs on a worker
    thread, so the event loop keeps serving, and before any transaction opens, so no
    connection or lock is held while it runs."""
    email = normalize_email(email)
    check_password_policy(password, email)
    return email, await asyncio.to_thread(_hasher.hash, password)


async def create_user(conn: AsyncConnection, email: str, password_hash: str,
                      role: str = "user", *, user_id: str | None = None) -> User | None:
    """Create an account from ``hash_new_password``'s answer; None if the e-mail is taken
    (the caller must not say so). ``user_id`` is for the demo's readable ids; accounts
    otherwise get a generated one."""
    assert role in ROLES
    if await repository.email_taken(conn, email):
        return None
    user = User(user_id or new_id(), email, role, False, datetime.now(UTC))
    await repository.insert_user(conn, user, password_hash)
    return user


async def set_role(conn: AsyncConnection, email: str, role: str) -> User | None:
    assert role in ROLES
    return await repository.set_role(conn, normalize_email(email), role)


async def get_user(conn: AsyncConnection, user_id: str) -> User | None:
    """The account, unless it does not exist or is disabled."""
    found = await repository.credentials_by_id(conn, user_id)
    return found.user if found and not found.disabled else None


async def check_password(db: AsyncEngine, email: str, password: str) -> Credentials:
    """The account whose password this is, else InvalidCredentials.

    Read outside any write transaction, then verified on a worker thread (argon2 is slow on
    purpose). Unknown e-mails verify against a dummy hash: the same time either way."""
    try:
        email = normalize_email(email)
    except ValidationFailed:
        email = ""
    found = None
    if email:
        async with db.connect() as conn:
            found = await repository.credentials_by_email(conn, email)
    ok = await asyncio.to_thread(_verify, found.password_hash if found else _DUMMY_HASH,
                                 password)
    if not ok or found is None or found.disabled:
        raise InvalidCredentials("wrong e-mail or password")
    return found


def _verify(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


async def rehash_if_needed(found: Credentials, password: str) -> str | None:
    """A new hash when the stored one uses outdated parameters (on a worker thread)."""
    if _hasher.check_needs_rehash(found.password_hash):
        return await asyncio.to_thread(_hasher.hash, password)
    return None


async def authenticate(conn: AsyncConnection, found: Credentials, new_hash: str | None,
                       totp_code: str | None, recovery_code: str | None) -> tuple[User, bool]:
    """After ``check_password``, inside the sign-in's transaction: store a refreshed hash,
    then the second factor; returns the user and whether 2FA was passed."""
    # Read again in this transaction: the account as it is now (disabled since? its
    # recovery codes as they are now).
    fresh = await repository.credentials_by_id(conn, found.user.id)
    if fresh is None or fresh.disabled or fresh.password_hash != found.password_hash:
        raise InvalidCredentials("wrong e-mail or password")
    found = fresh
    if new_hash is not None:
        await repository.set_password_hash(conn, found.user.id, new_hash)
    if not found.user.totp_enabled:
        return found.user, False
    if totp_code is None and recovery_code is None:
        raise MfaRequired("this account uses two-factor authentication: send totp_code "
                          "or recovery_code")
    await verify_second_factor(conn, found, totp_code, recovery_code)
    return found.user, True


async def verify_second_factor(conn: AsyncConnection, found: Credentials,
                               totp_code: str | None, recovery_code: str | None) -> None:
    """A current TOTP code, or an unused recovery code (spent by this call)."""
    if totp_code is not None:
        if found.totp_secret and pyotp.TOTP(found.totp_secret).verify(totp_code,
                                                                      valid_window=1):
            return
        raise InvalidMfaCode("the two-factor code is not valid")
    digest = _sha((recovery_code or "").strip().lower())
    if digest not in found.recovery_codes:
        raise InvalidMfaCode("the recovery code is not valid or was already used")
    left = list(found.recovery_codes)
    left.remove(digest)
    await repository.set_recovery_codes(conn, found.user.id, tuple(left))


def access_token(settings: AuthSettings, user: User, *, mfa: bool, session_id: str) -> str:
    """``sid`` names the sign-in (the refresh family), so that a browser session can be
    ended at once (its cookie is refused as soon as the family is revoked)."""
    assert settings.jwt_secret is not None
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": user.id, "role": user.role, "mfa": mfa, "typ": "access", "sid": session_id,
        "iat": now, "exp": now + timedelta(seconds=settings.access_token_ttl_s),
        "jti": secrets.token_hex(8),
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


async def start_session(conn: AsyncConnection, settings: AuthSettings, user: User, *,
                        mfa: bool, family_id: str | None = None) -> Session:
    raw = "cpr_" + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    family_id = family_id or new_id()
    await repository.insert_refresh_token(
        conn, token_id=new_id(), user_id=user.id, family_id=family_id,
        token_hash=_sha(raw), mfa=mfa, created_at=now,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_s))
    return Session(user, access_token(settings, user, mfa=mfa, session_id=family_id), raw,
                   settings.access_token_ttl_s, mfa, family_id)


async def refresh(conn: AsyncConnection, settings: AuthSettings, raw: str) -> Session:
    """Rotate: the old token is spent, a new one of the same family is issued."""
    token = await repository.refresh_token(conn, _sha(raw))
    if token is None:
        raise Unauthorized("unknown refresh token")
    now = datetime.now(UTC)
    if not await repository.spend_refresh_token(conn, token.id, now):
        # The caller revokes the family in its own transaction.
        raise RefreshTokenReused("this refresh token was already used; every session it "
                                 "belonged to is now signed out")
    if token.expires_at <= now:
        raise Unauthorized("the refresh token has expired; sign in again")
    user = await get_user(conn, token.user_id)
    if user is None:
        raise Unauthorized("the account is disabled")
    return await start_session(conn, settings, user, mfa=token.mfa, family_id=token.family_id)


async def revoke_family(conn: AsyncConnection, family_id: str) -> None:
    await repository.revoke_family(conn, family_id, datetime.now(UTC))


async def revoke_family_of(conn: AsyncConnection, raw: str) -> None:
    token = await repository.refresh_token(conn, _sha(raw))
    if token is not None:
        await revoke_family(conn, token.family_id)


async def family_of(conn: AsyncConnection, raw: str) -> str | None:
    """The sign-in a refresh token belongs to, if it is one of ours."""
    token = await repository.refresh_token(conn, _sha(raw))
    return token.family_id if token is not None else None


async def family_active(conn: AsyncConnection, family_id: str) -> bool:
    """A sign-in lives while its family has a token that is not revoked."""
    return await repository.family_active(conn, family_id)


async def logout(conn: AsyncConnection, raw: str) -> str | None:
    """Revoke the token's family; the user it belonged to, if it was one of ours."""
    token = await repository.refresh_token(conn, _sha(raw))
    if token is None:
        return None
    await revoke_family(conn, token.family_id)
    return token.user_id


async def enroll_totp(conn: AsyncConnection, user: User) -> TotpEnrolment:
    if user.totp_enabled:
        raise ValidationFailed("two-factor authentication is already on; disable it first")
    secret = pyotp.random_base32()
    await repository.set_totp_secret(conn, user.id, secret)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)
    return TotpEnrolment(secret, uri, qr_data_uri(uri))


async def _credentials(conn: AsyncConnection, user: User) -> Credentials:
    found = await repository.credentials_by_id(conn, user.id)
    assert found is not None  # the caller just read the user
    return found


async def confirm_totp(conn: AsyncConnection, user: User, code: str) -> list[str]:
    found = await _credentials(conn, user)
    if found.user.totp_enabled:
        raise ValidationFailed("two-factor authentication is already on")
    if not found.totp_secret:
        raise ValidationFailed("enrol first: POST /api/v1/auth/2fa/enroll")
    if not pyotp.TOTP(found.totp_secret).verify(code, valid_window=1):
        raise InvalidMfaCode("the two-factor code is not valid")
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    await repository.enable_totp(conn, user.id, tuple(_sha(c) for c in codes))
    return codes


async def disable_totp(conn: AsyncConnection, user: User, totp_code: str | None,
                       recovery_code: str | None) -> None:
    found = await _credentials(conn, user)
    if not found.user.totp_enabled:
        raise ValidationFailed("two-factor authentication is not on")
    await verify_second_factor(conn, found, totp_code, recovery_code)
    await repository.disable_totp(conn, user.id)
