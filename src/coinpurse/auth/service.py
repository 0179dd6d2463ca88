"""Sign-in flows of the built-in accounts, each one unit of work with its audit entry.

The rules inside a transaction are in ``accounts``; this module decides what commits
together and what must stick although the request fails: a failed sign-in is logged, and a
reused refresh token's family stays revoked.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.auth import accounts
from coinpurse.auth.errors import (
    InvalidCredentials,
    InvalidMfaCode,
    MfaRequired,
    RefreshTokenReused,
)
from coinpurse.auth.model import Me, Session, TotpEnrolment, TwoFactor, User
from coinpurse.auth.settings import AuthSettings
from coinpurse.auth.tokens import Principal
from coinpurse.core import audit
from coinpurse.core.errors import NotFound, Unauthorized


@dataclass(frozen=True, slots=True)
class AuthService:
    """What the sign-in flows need; built by the routes from the app's state."""

    db: AsyncEngine
    settings: AuthSettings

    @property
    def builtin(self) -> bool:
        return self.settings.auth == "builtin"

    def require_builtin(self) -> None:
        if not self.builtin:
            raise NotFound("built-in accounts are off (COINPURSE_AUTH=external)")

    async def register(self, email: str, password: str, *, ip: str) -> None:
        """Nothing tells the caller whether the e-mail was new (no account enumeration)."""
        email, password_hash = await accounts.hash_new_password(email, password)
        async with self.db.begin() as conn:
            user = await accounts.create_user(conn, email, password_hash)
            await audit.record(conn, actor=user.id if user else "anonymous",
                               action="auth.register", target=email,
                               details={"created": user is not None}, ip=ip)

    async def login(self, email: str, password: str, totp_code: str | None,
                    recovery_code: str | None, *, ip: str) -> Session:
        try:
            # argon2 runs before the transaction, on a worker thread.
            found = await accounts.check_password(self.db, email, password)
            new_hash = await accounts.rehash_if_needed(found, password)
            async with self.db.begin() as conn:
                user, mfa = await accounts.authenticate(conn, found, new_hash, totp_code,
                                                        recovery_code)
                session = await accounts.start_session(conn, self.settings, user, mfa=mfa)
                await audit.record(conn, actor=user.id, actor_role=user.role,
                                   action="auth.login", details={"mfa": mfa}, ip=ip)
        except (InvalidCredentials, MfaRequired, InvalidMfaCode) as exc:
            async with self.db.begin() as conn:
                await audit.record(conn, actor="anonymous", action="auth.login_failed",
                                   target=email.strip().lower()[:254],
                                   details={"code": exc.code}, ip=ip)
            raise
        return session

    async def refresh(self, raw: str, *, ip: str) -> Session:
        try:
            async with self.db.begin() as conn:
                return await accounts.refresh(conn, self.settings, raw)
        except RefreshTokenReused:
            # The family's revocation must stick although the request fails.
            async with self.db.begin() as conn:
                await accounts.revoke_family_of(conn, raw)
                await audit.record(conn, actor="anonymous", action="auth.refresh_reused",
                                   ip=ip)
            raise

    async def logout(self, raw: str, *, ip: str) -> None:
        async with self.db.begin() as conn:
            user_id = await accounts.logout(conn, raw)
            if user_id:
                await audit.record(conn, actor=user_id, action="auth.logout", ip=ip)

    async def me(self, principal: Principal) -> Me:
        """The token's claims; with built-in accounts, the account (its current role)."""
        if not self.builtin:
            return Me(principal.user_id, principal.role, principal.mfa)
        user = await self._user(principal)
        return Me(user.id, user.role, principal.mfa, user.email, user.totp_enabled,
                  user.created_at)

    async def account(self, principal: Principal) -> User:
        """The signed-in built-in account."""
        self.require_builtin()
        return await self._user(principal)

    async def _user(self, principal: Principal) -> User:
        async with self.db.connect() as conn:
            user = await accounts.get_user(conn, principal.user_id)
        if user is None:
            raise Unauthorized("the account no longer exists")
        return user

    async def enroll_totp(self, user: User, *, ip: str) -> TotpEnrolment:
        async with self.db.begin() as conn:
            enrolment = await accounts.enroll_totp(conn, user)
            await audit.record(conn, actor=user.id, actor_role=user.role,
                               action="auth.2fa_enroll", ip=ip)
        return enrolment

    async def confirm_totp(self, user: User, code: str, *, ip: str) -> TwoFactor:
        async with self.db.begin() as conn:
            codes = await accounts.confirm_totp(conn, user, code)
            await audit.record(conn, actor=user.id, actor_role=user.role,
                               action="auth.2fa_confirm", ip=ip)
        return TwoFactor(totp_enabled=True, recovery_codes=tuple(codes))

    async def disable_totp(self, user: User, totp_code: str | None, recovery_code: str | None,
                           *, ip: str) -> TwoFactor:
        async with self.db.begin() as conn:
            await accounts.disable_totp(conn, user, totp_code, recovery_code)
            await audit.record(conn, actor=user.id, actor_role=user.role,
                               action="auth.2fa_disable", ip=ip)
        return TwoFactor(totp_enabled=False)
