"""What every route needs: the running app's parts, and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from coinpurse.auth import keys
from coinpurse.auth.keys import ServiceKey
from coinpurse.auth.service import AuthService
from coinpurse.auth.tokens import Principal
from coinpurse.core.errors import Forbidden, Unauthorized, ValidationFailed
from coinpurse.core.logging import current_request
from coinpurse.core.types import IDEMPOTENCY_KEY_RE
from coinpurse.http import cookies
from coinpurse.state import AppState


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.coinpurse
    return state


State = Annotated[AppState, Depends(get_state)]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="A service key from `coinpurse keys create`.")
_bearer = HTTPBearer(auto_error=False, description="A user's JWT; `sub` is the user id.")


async def current_service(
    state: State,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    x_service_name: Annotated[str | None, Header(max_length=128)] = None,
) -> ServiceKey:
    if not api_key:
        raise Unauthorized("send a service key in the X-API-Key header")
    key = None
    if api_key.startswith(keys.KEY_PREFIX) and len(api_key) <= 128:
        key_hash = keys.hash_key(api_key)
        key = state.key_cache.get(key_hash)
        if key is None:
            generation = state.key_cache.generation()
            async with state.db.connect() as conn:
                key = await keys.lookup(conn, key_hash)
            if key is not None:
                state.key_cache.put(key_hash, key, generation)
    if key is None:
        raise Unauthorized("the API key is not valid or has been revoked")
    info = current_request()
    if info is not None:
        info.principal = f"service:{key.service}"
    await state.rate_limits.hit(state.rate_limits.service, "service-key", key.id)
    if x_service_name is not None and x_service_name != key.service:
        raise Forbidden(f"X-Service-Name {x_service_name!r} does not match this key's service")
    return key


async def current_principal(
    state: State,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """A Bearer token; or, with built-in accounts, a browser's session cookie (``cp_session``,
    with the CSRF check on requests that change state). Every user route, and the live
    stream, takes the caller from here."""
    if credentials is not None and credentials.scheme.lower() == "bearer":
        principal = state.verifier.principal(credentials.credentials)
    else:
        token = cookies.access_token(request)
        if token is None or state.settings.auth != "builtin":
            raise Unauthorized("send a user token as Authorization: Bearer <jwt>")
        csrf_header, csrf_cookie = cookies.csrf_pair(request)
        principal = await AuthService(state.db, state.settings).cookie_principal(
            state.verifier.principal(token), changes_state=cookies.changes_state(request),
            csrf_header=csrf_header, csrf_cookie=csrf_cookie)
    info = current_request()
    if info is not None:
        info.principal = f"{principal.role}:{principal.user_id}"
    await state.rate_limits.hit(state.rate_limits.user, "user", principal.user_id)
    return principal


async def connection_principal(state: AppState, connection: HTTPConnection,
                               token: str | None = None) -> Principal:
    """Who a connection that is not a plain request speaks for (a WebSocket): the Bearer
    token of its Authorization header, else ``token`` (one it sent in its first message),
    else, with built-in accounts, the browser's session cookie from one of our own pages
    (same ``Origin``: a WebSocket has no CSRF header)."""
    scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        token = credentials.strip()
    cookie = cookies.access_token(connection)
    if token:
        principal = state.verifier.principal(token)
    elif cookie is not None and state.settings.auth == "builtin":
        if not cookies.same_origin(connection):
            raise Forbidden("a WebSocket signed in by cookie must be opened by this "
                            "server's own pages (Origin)", reason="cross_origin")
        principal = await AuthService(state.db, state.settings).cookie_principal(
            state.verifier.principal(cookie), changes_state=False, csrf_header=None,
            csrf_cookie=None)
    else:
        raise Unauthorized("send a user token as Authorization: Bearer <jwt>, or as "
                           '{"token": "<jwt>"} in the first message')
    await state.rate_limits.hit(state.rate_limits.user, "user", principal.user_id)
    return principal


def client_ip(request: Request) -> str:
    """The client's address: the peer's, or, when the peer is one of
    ``COINPURSE_TRUSTED_PROXIES``, the one its X-Forwarded-For names (the proxy middleware
    has already put it in the scope)."""
    return request.client.host if request.client else "unknown"


async def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> str:
    return principal.user_id


async def admin_reader(
    state: State, principal: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    """Admins and auditors; with built-in accounts only after two-factor sign-in."""
    if principal.role not in ("admin", "auditor"):
        raise Forbidden("this needs an admin or auditor token")
    if state.settings.auth == "builtin" and not principal.mfa:
        raise Forbidden("admins and auditors must sign in with two-factor authentication "
                        "(enrol at /api/v1/auth/2fa/enroll)", reason="mfa_required")
    return principal


async def admin_writer(principal: Annotated[Principal, Depends(admin_reader)]) -> Principal:
    if principal.role != "admin":
        raise Forbidden("auditors read; only admins change things")
    return principal


Service = Annotated[ServiceKey, Depends(current_service)]
UserId = Annotated[str, Depends(current_user)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Admin = Annotated[Principal, Depends(admin_reader)]
AdminWriter = Annotated[Principal, Depends(admin_writer)]


async def idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(description="Required. A unique key per operation, at most 255 printable "
               "ASCII characters; a retry with the same key replays the first answer."),
    ] = None,
) -> str:
    if idempotency_key is None:
        raise ValidationFailed(
            "this request moves money and needs an Idempotency-Key header",
            [{"loc": ["header", "Idempotency-Key"], "msg": "Field required", "type": "missing"}],
        )
    if not IDEMPOTENCY_KEY_RE.match(idempotency_key):
        raise ValidationFailed(
            "the Idempotency-Key header must be 1 to 255 printable ASCII characters",
            [{"loc": ["header", "Idempotency-Key"], "msg": "invalid", "type": "string_pattern"}],
        )
    return idempotency_key


IdempotencyKey = Annotated[str, Depends(idempotency_key)]


# GraphQL resolves its caller lazily, outside FastAPI's dependencies, with the same rules.


async def request_principal(state: AppState, request: Request) -> Principal:
    """``current_principal`` for a request (a Bearer token, or the session cookie with its
    CSRF check on POST)."""
    return await current_principal(state, request, await _bearer(request))


async def request_service(state: AppState, request: Request) -> ServiceKey:
    """``current_service`` for a request."""
    name = request.headers.get("x-service-name")
    if name is not None and len(name) > 128:
        raise ValidationFailed("X-Service-Name is at most 128 characters")
    return await current_service(state, await _api_key_header(request), name)

