"""The auth domain's value types: accounts, sessions and service keys. No database, no HTTP.

The repository maps rows to them, the services return them, the schemas render them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from coinpurse.auth.scopes import allows
from coinpurse.core.errors import Forbidden


@dataclass(frozen=True, slots=True)
class User:
    """A built-in account as anyone may see it (its owner, an admin, the CLI)."""

    id: str
    email: str
    role: str
    totp_enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    """What sign-in and two-factor checks read; never leaves the auth services."""

    user: User
    password_hash: str
    totp_secret: str | None
    recovery_codes: tuple[str, ...]  # SHA-256 hashes of the unused codes
    disabled: bool


@dataclass(frozen=True, slots=True)
class RefreshToken:
    id: str
    user_id: str
    family_id: str
    mfa: bool
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in session: a short-lived access token and a single-use refresh token.
    ``session_id`` names the sign-in (the refresh family), which a browser session's
    cookies and CSRF token are bound to."""

    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    mfa: bool
    session_id: str
    token_type: str = "bearer"


@dataclass(frozen=True, slots=True)
class Me:
    """Who a token speaks for; with built-in accounts, their account too."""

    id: str
    role: str
    mfa: bool
    email: str | None = None
    totp_enabled: bool | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    secret: str
    otpauth_uri: str
    qr_code: str  # the URI as an SVG data: URI


@dataclass(frozen=True, slots=True)
class TwoFactor:
    """Whether two-factor is on, and the recovery codes when it was just turned on."""

    totp_enabled: bool
    recovery_codes: tuple[str, ...] = ()


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


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created, with its secret: shown in this one answer, never stored."""

    key: ServiceKey
    secret: str


@dataclass(frozen=True, slots=True)
class RotatedKey:
    new: NewKey
    previous: ServiceKey
