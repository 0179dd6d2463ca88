"""Sign-in for standalone deployments (``COINPURSE_AUTH=builtin``), and ``/api/v1/me``.

The browser session routes (``/api/v1/auth/session``) are the same sign-in, refresh and
sign-out, with the tokens in httpOnly cookies instead of the answer (``http.cookies``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from coinpurse.auth import schemas as s
from coinpurse.auth.errors import (
    CsrfFailed,
    InvalidCredentials,
    InvalidMfaCode,
    MfaRequired,
    RefreshTokenReused,
)
from coinpurse.auth.model import Session
from coinpurse.auth.service import AuthService
from coinpurse.auth.tokens import Principal
from coinpurse.core.errors import (
    CoinpurseError,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from coinpurse.http import cookies
from coinpurse.http.deps import CurrentPrincipal, State, client_ip
from coinpurse.http.responses import json_response, problem_response, problems

router = APIRouter(prefix="/api/v1", tags=["auth"])

_LOGIN_ERRORS = (ValidationFailed, InvalidCredentials, MfaRequired, InvalidMfaCode,
                 RateLimited)


def _accounts(state: State) -> AuthService:
    return AuthService(state.db, state.settings)


def _answer(model: BaseModel, status: int = 200, *, exclude_none: bool = False) -> Response:
    return json_response(model.model_dump(mode="json", exclude_none=exclude_none),
                         status=status)


async def _limit_attempts(state: State, request: Request, account: str) -> None:
    limits = state.rate_limits
    await limits.hit(limits.login, "login-account", account)
    await limits.hit(limits.login_ip, "login-ip", client_ip(request))


@router.post("/auth/register", status_code=202, response_model=s.AcceptedOut,
             responses=problems(ValidationFailed, RateLimited),
             summary="Create an account")
async def register(body: s.RegisterIn, request: Request, state: State) -> Response:
    """Answers the same whether or not the e-mail already has an account, so it cannot be
    used to find out who is registered. Sign in next."""
    svc = _accounts(state)
    svc.require_builtin()
    await state.rate_limits.hit(state.rate_limits.login_ip, "register-ip", client_ip(request))
    await svc.register(body.email, body.password, role=body.account_type,
                       ip=client_ip(request))
    return _answer(s.AcceptedOut(
        status="accepted", detail="if this e-mail is new, the account exists now; sign in"),
        status=202)


@router.post("/auth/login", response_model=s.SessionOut, responses=problems(*_LOGIN_ERRORS),
             summary="Sign in; returns an access token and a refresh token")
async def login(body: s.LoginIn, request: Request, state: State) -> Response:
    """The access token lives `COINPURSE_ACCESS_TOKEN_TTL_S` (15 minutes); the refresh token
    is single-use. With 2FA on, send `totp_code` (or a `recovery_code`). Attempts are rate
    limited per account and per client address (429 with `Retry-After`)."""
    svc = _accounts(state)
    svc.require_builtin()
    await _limit_attempts(state, request, body.email.strip().lower())
    session = await svc.login(body.email, body.password, body.totp_code, body.recovery_code,
                              ip=client_ip(request))
    return _answer(s.SessionOut.model_validate(session))


@router.post("/auth/refresh", response_model=s.SessionOut,
             responses=problems(ValidationFailed, Unauthorized, RefreshTokenReused),
             summary="Trade a refresh token for a new pair")
async def refresh(body: s.RefreshIn, request: Request, state: State) -> Response:
    """Each refresh token works once. Using one twice signs out its whole family."""
    svc = _accounts(state)
    svc.require_builtin()
    session = await svc.refresh(body.refresh_token, ip=client_ip(request))
    return _answer(s.SessionOut.model_validate(session))


@router.post("/auth/logout", status_code=204, responses=problems(ValidationFailed),
             summary="Revoke a refresh token and its family")
async def logout(body: s.RefreshIn, request: Request, state: State) -> Response:
    """Revokes the refresh token and every token of its family (the sign-in it came from).
    Answers 204 whether or not the token was known."""
    svc = _accounts(state)
    svc.require_builtin()
    await svc.logout(body.refresh_token, ip=client_ip(request))
    return Response(status_code=204)


@router.get("/me", response_model=s.MeOut, responses=problems(Unauthorized),
            summary="Who the token belongs to")
async def me(principal: CurrentPrincipal, state: State) -> Response:
    """The user id, role and whether two-factor authentication was passed; with built-in
    accounts also the e-mail and whether 2FA is on."""
    found = await _accounts(state).me(principal)
    return _answer(s.MeOut.model_validate(found), exclude_none=True)  # no nulls: external tokens


@router.post("/auth/2fa/enroll", response_model=s.EnrollOut,
             responses=problems(Unauthorized, ValidationFailed),
             summary="Start two-factor enrolment: a TOTP secret for an authenticator app")
async def enroll(principal: CurrentPrincipal, request: Request, state: State) -> Response:
    """Starts two-factor enrolment: a new TOTP secret and its `otpauth://` URI for an
    authenticator app. 2FA is on only after `POST /api/v1/auth/2fa/confirm` with a first code."""
    svc = _accounts(state)
    user = await svc.account(principal)
    enrolment = await svc.enroll_totp(user, ip=client_ip(request))
    return _answer(s.EnrollOut.model_validate(enrolment))


@router.post("/auth/2fa/confirm", response_model=s.ConfirmOut,
             responses=problems(Unauthorized, InvalidMfaCode, RateLimited),
             summary="Turn two-factor on with a first code; returns recovery codes once")
async def confirm(body: s.CodeIn, principal: CurrentPrincipal, request: Request,
                  state: State) -> Response:
    """Sign in again afterwards (with the code) for a session that counts as 2FA."""
    svc = _accounts(state)
    user = await svc.account(principal)
    await _limit_attempts(state, request, user.email)
    done = await svc.confirm_totp(user, body.code, ip=client_ip(request))
    return _answer(s.ConfirmOut.model_validate(done))


@router.post("/auth/2fa/disable", response_model=s.DisableOut,
             responses=problems(Unauthorized, InvalidMfaCode, RateLimited),
             summary="Turn two-factor off (needs a current code or a recovery code)")
async def disable(body: s.DisableIn, principal: CurrentPrincipal, request: Request,
                  state: State) -> Response:
    """Turns two-factor authentication off; needs a current `totp_code` or an unused
    `recovery_code`."""
    svc = _accounts(state)
    user = await svc.account(principal)
    await _limit_attempts(state, request, user.email)
    done = await svc.disable_totp(user, body.totp_code, body.recovery_code,
                                  ip=client_ip(request))
    return _answer(s.DisableOut.model_validate(done))


# --- browser sessions -----------------------------------------------------------------------

def _with_cookies(svc: AuthService, request: Request, session: Session) -> Response:
    out = _answer(s.BrowserSessionOut.model_validate(session))
    cookies.set_session(out, request, access_token=session.access_token,
                        refresh_token=session.refresh_token,
                        csrf_token=svc.csrf_token(session.session_id),
                        refresh_ttl_s=svc.settings.refresh_token_ttl_s)
    return out


def _refused(exc: CoinpurseError, request: Request) -> Response:
    """A refused refresh also clears the cookies: that session is over."""
    out = problem_response(exc)
    cookies.clear_session(out, request)
    return out


@router.post("/auth/session", response_model=s.BrowserSessionOut,
             responses=problems(*_LOGIN_ERRORS, NotFound),
             summary="Sign in a browser: the session goes into httpOnly cookies")
async def sign_in_browser(body: s.LoginIn, request: Request, state: State) -> Response:
    """The same sign-in as `POST /api/v1/auth/login` (2FA, rate limits, audit), but the
    tokens are set as cookies: `cp_session` (access, httpOnly), `cp_refresh` (httpOnly,
    sent only to this path) and `cp_csrf` (readable: echo it in `X-CSRF-Token` on every
    state-changing request). All `SameSite=Strict`, `Secure` over HTTPS. The API then takes
    the session cookie wherever it takes `Authorization: Bearer`."""
    svc = _accounts(state)
    svc.require_builtin()
    await _limit_attempts(state, request, body.email.strip().lower())
    session = await svc.login(body.email, body.password, body.totp_code, body.recovery_code,
                              ip=client_ip(request))
    return _with_cookies(svc, request, session)


@router.post("/auth/session/refresh", response_model=s.BrowserSessionOut,
             responses=problems(Unauthorized, CsrfFailed, RefreshTokenReused, NotFound),
             summary="Renew the browser session's access cookie")
async def refresh_browser(request: Request, state: State) -> Response:
    """Rotates the refresh cookie (single use, like `POST /api/v1/auth/refresh`). Needs
    `X-CSRF-Token`. A refused refresh also clears the cookies."""
    svc = _accounts(state)
    svc.require_builtin()
    csrf_header, csrf_cookie = cookies.csrf_pair(request)
    try:
        session = await svc.refresh_browser(cookies.refresh_token(request),
                                            csrf_header=csrf_header, csrf_cookie=csrf_cookie,
                                            ip=client_ip(request))
    except (Unauthorized, RefreshTokenReused) as exc:
        return _refused(exc, request)
    return _with_cookies(svc, request, session)


@router.post("/auth/session/logout", status_code=204,
             responses=problems(CsrfFailed, NotFound),
             summary="Sign the browser out: the session ends now, cookies are cleared")
async def sign_out_browser(request: Request, state: State) -> Response:
    """Revokes the sign-in, so the access cookie is refused at once too (a Bearer access
    token, by contrast, runs until it expires). Needs `X-CSRF-Token`."""
    svc = _accounts(state)
    svc.require_builtin()
    principal: Principal | None = None
    if (access := cookies.access_token(request)) is not None:
        try:
            principal = state.verifier.principal(access)
        except Unauthorized:  # run out: the refresh cookie still names the sign-in
            principal = None
    csrf_header, csrf_cookie = cookies.csrf_pair(request)
    await svc.sign_out_browser(principal, cookies.refresh_token(request),
                               csrf_header=csrf_header, csrf_cookie=csrf_cookie,
                               ip=client_ip(request))
    out = Response(status_code=204)
    cookies.clear_session(out, request)
    return out
