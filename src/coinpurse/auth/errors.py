"""Sign-in refusals of the built-in accounts, and of browser sessions."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError


class InvalidCredentials(CoinpurseError):
    code = "invalid_credentials"
    status = 401
    title = "Wrong e-mail or password"


class MfaRequired(CoinpurseError):
    code = "mfa_required"
    status = 401
    title = "A two-factor code is required"


class InvalidMfaCode(CoinpurseError):
    code = "invalid_mfa_code"
    status = 401
    title = "The two-factor code is not valid"


class RefreshTokenReused(CoinpurseError):
    code = "refresh_token_reused"
    status = 401
    title = "This refresh token was already used; every session of its family is revoked"


class CsrfFailed(CoinpurseError):
    """A cookie-authenticated request that changes state without the session's CSRF token."""

    code = "csrf_failed"
    status = 403
    title = "Missing or wrong CSRF token"
