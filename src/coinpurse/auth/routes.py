"""Sign-in for standalone deployments (``COINPURSE_AUTH=builtin``), and ``/api/v1/me``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StringConstraints
from starlette.responses import Response

from coinpurse.auth import accounts
from coinpurse.auth.errors import (
    InvalidCredentials,
    InvalidMfaCode,
    MfaRequired,
    RefreshTokenReused,
)
from coinpurse.core import audit
from coinpurse.core.errors import NotFound, RateLimited, Unauthorized, ValidationFailed
from coinpurse.core.types import StrictModel, clean_text
from coinpurse.http.deps import CurrentPrincipal, State, client_ip
from coinpurse.http.responses import json_response, problems

router = APIRouter(prefix="/api/v1", tags=["auth"])

Email = Annotated[str, StringConstraints(min_length=3, max_length=254), clean_text]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Code = Annotated[str, StringConstraints(min_length=6, max_length=10, pattern=r"^[0-9]+$")]
Recovery = Annotated[str, StringConstraints(min_length=1, max_length=32)]
RawToken = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _In(StrictModel):
    pass


class RegisterIn(_In):
    email: Email
    password: Password = Field(description=f"At least {accounts.PASSWORD_MIN} characters.")


class LoginIn(_In):
    email: Email
    password: Password
    totp_code: Code | None = Field(default=None, description="When 2FA is on.")
    recovery_code: Recovery | None = Field(default=None, description="Instead of totp_code.")


class RefreshIn(_In):
    refresh_token: RawToken


class CodeIn(_In):
    code: Code


class DisableIn(_In):
    totp_code: Code | None = None
    recovery_code: Recovery | None = None


class UserOut(BaseModel):
    id: str
    email: str
    role: str
    totp_enabled: bool
    created_at: str


class MeOut(BaseModel):
    id: str
    role: str
    mfa: bool = Field(description="Whether this token's session passed two-factor sign-in.")
    email: str | None = Field(default=None, description="Built-in accounts only.")
    totp_enabled: bool | None = None
    created_at: str | None = None


class EnrollOut(BaseModel):
    secret: str = Field(description="Base32 TOTP secret for an authenticator app.")
    otpauth_uri: str


class ConfirmOut(BaseModel):
    totp_enabled: bool
    recovery_codes: list[str] = Field(description="Single-use; shown this once.")


class DisableOut(BaseModel):
    totp_enabled: bool


class AcceptedOut(BaseModel):
    status: str
    detail: str


class SessionOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    mfa: bool = Field(description="Whether this session passed two-factor authentication.")
    user: UserOut


_LOGIN_ERRORS = (ValidationFailed, InvalidCredentials, MfaRequired, InvalidMfaCode,
                 RateLimited)


def _builtin(state: State) -> None:
    if state.settings.auth != "builtin":
        raise NotFound("built-in accounts are off (COINPURSE_AUTH=external)")


async def _limit_attempts(state: State, request: Request, account: str) -> None:
    limits = state.rate_limits
    await limits.hit(limits.login, "login-account", account)
    await limits.hit(limits.login_ip, "login-ip", client_ip(request))


@router.post("/auth/register", status_code=202, response_model=AcceptedOut,
             responses=problems(ValidationFailed, RateLimited),
             summary="Create an account")
async def register(body: RegisterIn, request: Request, state: State) -> Response:
    """Answers the same whether or not the e-mail already has an account, so it cannot be
    used to find out who is registered. Sign in next."""
    _builtin(state)
    await state.rate_limits.hit(state.rate_limits.login_ip, "register-ip", client_ip(request))
    async with state.db.begin() as conn:
        user = await accounts.create_user(conn, body.email, body.password)
        await audit.record(conn, actor=user.id if user else "anonymous", action="auth.register",
                           target=accounts.normalize_email(body.email),
                           details={"created": user is not None}, ip=client_ip(request))
    return json_response({"status": "accepted",
                          "detail": "if this e-mail is new, the account exists now; sign in"},
                         status=202)


@router.post("/auth/login", response_model=SessionOut, responses=problems(*_LOGIN_ERRORS),
             summary="Sign in; returns an access token and a refresh token")
async def login(body: LoginIn, request: Request, state: State) -> Response:
    """The access token lives `COINPURSE_ACCESS_TOKEN_TTL_S` (15 minutes); the refresh token
    is single-use. With 2FA on, send `totp_code` (or a `recovery_code`). Attempts are rate
    limited per account and per client address (429 with `Retry-After`)."""
    _builtin(state)
    ip = client_ip(request)
    await _limit_attempts(state, request, body.email.strip().lower())
    try:
        async with state.db.begin() as conn:
            user, mfa = await accounts.authenticate(conn, body.email, body.password,
                                                    body.totp_code, body.recovery_code)
            session = await accounts.start_session(conn, state.settings, user, mfa=mfa)
            await audit.record(conn, actor=user.id, actor_role=user.role, action="auth.login",
                               details={"mfa": mfa}, ip=ip)
    except (InvalidCredentials, MfaRequired, InvalidMfaCode) as exc:
        async with state.db.begin() as conn:
            await audit.record(conn, actor="anonymous", action="auth.login_failed",
                               target=body.email.strip().lower()[:254],
                               details={"code": exc.code}, ip=ip)
        raise
    return json_response(session.as_dict())


@router.post("/auth/refresh", response_model=SessionOut,
             responses=problems(ValidationFailed, Unauthorized, RefreshTokenReused),
             summary="Trade a refresh token for a new pair")
async def refresh(body: RefreshIn, request: Request, state: State) -> Response:
    """Each refresh token works once. Using one twice signs out its whole family."""
    _builtin(state)
    try:
        async with state.db.begin() as conn:
            session = await accounts.refresh(conn, state.settings, body.refresh_token)
    except RefreshTokenReused:
        # The family's revocation must stick although the request fails.
        async with state.db.begin() as conn:
            await accounts.revoke_family_of(conn, body.refresh_token)
            await audit.record(conn, actor="anonymous", action="auth.refresh_reused",
                               ip=client_ip(request))
        raise
    return json_response(session.as_dict())


@router.post("/auth/logout", status_code=204, responses=problems(ValidationFailed),
             summary="Revoke a refresh token and its family")
async def logout(body: RefreshIn, request: Request, state: State) -> Response:
    _builtin(state)
    async with state.db.begin() as conn:
        user_id = await accounts.logout(conn, body.refresh_token)
        if user_id:
            await audit.record(conn, actor=user_id, action="auth.logout",
                               ip=client_ip(request))
    return Response(status_code=204)


@router.get("/me", response_model=MeOut, responses=problems(Unauthorized),
            summary="Who the token belongs to")
async def me(principal: CurrentPrincipal, state: State) -> Response:
    body: dict[str, Any] = {"id": principal.user_id, "role": principal.role,
                            "mfa": principal.mfa}
    if state.settings.auth == "builtin":
        async with state.db.connect() as conn:
            user = await accounts.get_user(conn, principal.user_id)
        if user is None:
            raise Unauthorized("the account no longer exists")
        body.update(user.as_dict())
    return json_response(body)


async def _me(state: State, principal: CurrentPrincipal) -> accounts.User:
    _builtin(state)
    async with state.db.connect() as conn:
        user = await accounts.get_user(conn, principal.user_id)
    if user is None:
        raise Unauthorized("the account no longer exists")
    return user


@router.post("/auth/2fa/enroll", response_model=EnrollOut,
             responses=problems(Unauthorized, ValidationFailed),
             summary="Start two-factor enrolment: a TOTP secret for an authenticator app")
async def enroll(principal: CurrentPrincipal, request: Request, state: State) -> Response:
    user = await _me(state, principal)
    async with state.db.begin() as conn:
        out = await accounts.enroll_totp(conn, user)
        await audit.record(conn, actor=user.id, actor_role=user.role,
                           action="auth.2fa_enroll", ip=client_ip(request))
    return json_response(out)


@router.post("/auth/2fa/confirm", response_model=ConfirmOut,
             responses=problems(Unauthorized, InvalidMfaCode, RateLimited),
             summary="Turn two-factor on with a first code; returns recovery codes once")
async def confirm(body: CodeIn, principal: CurrentPrincipal, request: Request,
                  state: State) -> Response:
    """Sign in again afterwards (with the code) for a session that counts as 2FA."""
    user = await _me(state, principal)
    await _limit_attempts(state, request, user.email)
    async with state.db.begin() as conn:
        codes = await accounts.confirm_totp(conn, user, body.code)
        await audit.record(conn, actor=user.id, actor_role=user.role,
                           action="auth.2fa_confirm", ip=client_ip(request))
    return json_response({"totp_enabled": True, "recovery_codes": codes})


@router.post("/auth/2fa/disable", response_model=DisableOut,
             responses=problems(Unauthorized, InvalidMfaCode, RateLimited),
             summary="Turn two-factor off (needs a current code or a recovery code)")
async def disable(body: DisableIn, principal: CurrentPrincipal, request: Request,
                  state: State) -> Response:
    user = await _me(state, principal)
    await _limit_attempts(state, request, user.email)
    async with state.db.begin() as conn:
        await accounts.disable_totp(conn, user, body.totp_code, body.recovery_code)
        await audit.record(conn, actor=user.id, actor_role=user.role,
                           action="auth.2fa_disable", ip=client_ip(request))
    return json_response({"totp_enabled": False})
