"""Sign-in flows of the built-in accounts, each one unit of work with its audit entry.

The rules inside a transaction are in ``accounts``; this module decides what commits
together and what must stick although the request fails: a failed sign-in is logged, and a
reused refresh token's family stays revoked.

Browser sessions carry the same sign-in in cookies (``http.cookies`` sets them). Their rules
are here: a cookie session speaks for its user only while its sign-in (the refresh family,
the access token's ``sid``) is not revoked, so signing out ends it at once; and every
state-changing request that authenticates by cookie must echo the CSRF cookie in a header
(double submit, compared in constant time), where the token is an HMAC of the sign-in, so a
token planted by a sibling site does not match. A Bearer caller is not affected: another
site cannot make a browser send an Authorization header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.auth import accounts, repository
from coinpurse.auth.errors import (
    CsrfFailed,
    InvalidCredentials,
    InvalidMfaCode,
    MfaRequired,
    RefreshTokenReused,
)
from coinpurse.auth.model import Me, Session, TotpEnrolment, TwoFactor, User
from coinpurse.auth.settings import AuthSettings
from coinpurse.auth.tokens import Principal
from coinpurse.bonuses import service as bonuses
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

    async def register(self, email: str, password: str, *, ip: str,
                       role: str = "user") -> None:
        """Nothing tells the caller whether the e-mail was new (no account enumeration).
        ``role``: ``user`` or ``merchant``; never more (the routes' schema says so)."""
        assert role in ("user", "merchant")
        email, password_hash = await accounts.hash_new_password(email, password)
        async with self.db.begin() as conn:
            user = await accounts.create_user(conn, email, password_hash, role=role)
            if user is not None:  # its sign-up bonuses, granted by the bonus worker
                await bonuses.enqueue_signup(conn, user.id)
            await audit.record(conn, actor=user.id if user else "anonymous",
                               action="auth.register", target=email,
                               details={"created": user is not None, "role": role}, ip=ip)

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

    # --- browser sessions -----------------------------------------------------------------

    def csrf_token(self, session_id: str) -> str:
        """The CSRF token of one sign-in: an HMAC of its id, so only that sign-in has it."""
        assert self.settings.jwt_secret is not None  # built-in accounts need it
        key = self.settings.jwt_secret.get_secret_value().encode()
        mac = hmac.new(key, b"csrf:" + session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def check_csrf(self, session_id: str | None, header: str | None,
                   cookie: str | None) -> None:
        """The header equals the cookie; and, once the sign-in is known, it is its token."""
        if not header or not cookie or not hmac.compare_digest(header.encode(),
                                                               cookie.encode()):
            raise CsrfFailed("this request authenticates with the session cookie and changes "
                             "state: send the cp_csrf cookie's value in the X-CSRF-Token header")
        if session_id is not None and not hmac.compare_digest(
                header.encode(), self.csrf_token(session_id).encode()):
            raise CsrfFailed("the CSRF token does not belong to this session")

    async def cookie_principal(self, principal: Principal, *, changes_state: bool,
                               csrf_header: str | None, csrf_cookie: str | None) -> Principal:
        """Who a session cookie speaks for: CSRF checked before anything is looked up, then
        the sign-in must still be on."""
        if principal.session_id is None:
            raise Unauthorized("the session cookie holds no session; sign in again")
        if changes_state:
            self.check_csrf(principal.session_id, csrf_header, csrf_cookie)
        async with self.db.connect() as conn:
            active = await accounts.family_active(conn, principal.session_id)
        if not active:
            raise Unauthorized("this session has ended (signed out); sign in again")
        return principal

    async def refresh_browser(self, raw: str | None, *, csrf_header: str | None,
                              csrf_cookie: str | None, ip: str) -> Session:
        """Rotate the refresh cookie; the CSRF token must be its sign-in's."""
        self.check_csrf(None, csrf_header, csrf_cookie)
        if not raw:
            raise Unauthorized("no session to refresh; sign in")
        async with self.db.connect() as conn:
            family = await accounts.family_of(conn, raw)
        if family is not None:
            self.check_csrf(family, csrf_header, csrf_cookie)
        return await self.refresh(raw, ip=ip)

    async def sign_out_browser(self, principal: Principal | None, raw: str | None, *,
                               csrf_header: str | None, csrf_cookie: str | None,
                               ip: str) -> None:
        """End the sign-in of the access cookie (``principal``, None when it has run out)
        and of the refresh cookie; the CSRF token must be theirs."""
        self.check_csrf(None, csrf_header, csrf_cookie)
        families = {principal.session_id} if principal and principal.session_id else set()
        if raw:
            async with self.db.connect() as conn:
                family = await accounts.family_of(conn, raw)
            if family is not None:
                families.add(family)
        for family in families:
            self.check_csrf(family, csrf_header, csrf_cookie)
        async with self.db.begin() as conn:
            user_id = await accounts.logout(conn, raw) if raw else None
            for family in families:
                await accounts.revoke_family(conn, family)
            user_id = user_id or (principal.user_id if principal else None)
            if user_id:
                await audit.record(conn, actor=user_id, action="auth.logout",
                                   details={"browser": True}, ip=ip)


async def email_of(conn: AsyncConnection, user_id: str) -> str | None:
    """A built-in account's e-mail address (None if unknown or disabled): where
    notification e-mails go."""
    found = await repository.credentials_by_id(conn, user_id)
    return found.user.email if found is not None and not found.disabled else None
