"""The browser session's cookies: their names, flags, and how a request carries them.

A browser signed in with ``POST /api/v1/auth/session`` keeps three cookies, all
``SameSite=Strict`` (and ``Secure`` over HTTPS):

- ``cp_session`` (httpOnly, path ``/``): the access token, accepted beside the
  ``Authorization: Bearer`` header (``http.deps``);
- ``cp_refresh`` (httpOnly, path ``/api/v1/auth/session``): the refresh token, sent only to
  the session routes;
- ``cp_csrf`` (readable by the page): the CSRF token, which the page echoes in
  ``X-CSRF-Token`` on every state-changing request.

What the cookies mean, and when they are refused, is the auth service's business
(``AuthService.cookie_principal``, ``check_csrf``); this module only moves them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

ACCESS_COOKIE = "cp_session"
REFRESH_COOKIE = "cp_refresh"
CSRF_COOKIE = "cp_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_PATH = "/api/v1/auth/session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ACCESS_MAX = 4096  # a browser keeps no longer cookie
REFRESH_MAX = 256  # longer than any refresh token we issue: not one of ours


def _cookie(request: HTTPConnection, name: str, longest: int) -> str | None:
    value = request.cookies.get(name)
    return value if value and len(value) <= longest else None


def access_token(request: HTTPConnection) -> str | None:
    return _cookie(request, ACCESS_COOKIE, ACCESS_MAX)


def refresh_token(request: Request) -> str | None:
    return _cookie(request, REFRESH_COOKIE, REFRESH_MAX)


def csrf_pair(request: Request) -> tuple[str | None, str | None]:
    """The CSRF header and cookie, for the double-submit check."""
    return request.headers.get(CSRF_HEADER), request.cookies.get(CSRF_COOKIE)


def same_origin(connection: HTTPConnection) -> bool:
    """The page that opened this connection is one of ours (its ``Origin`` names our
    ``Host``): a WebSocket carries no CSRF header, so a cookie alone must not open one for
    another site's page."""
    origin, host = connection.headers.get("origin"), connection.headers.get("host")
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def changes_state(request: Request) -> bool:
    return request.method not in SAFE_METHODS


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, *, access_token: str,
                refresh_token: str, csrf_token: str, refresh_ttl_s: int) -> None:
    secure = _secure(request)
    response.set_cookie(ACCESS_COOKIE, access_token, path="/", httponly=True,
                        secure=secure, samesite="strict")
    response.set_cookie(REFRESH_COOKIE, refresh_token, max_age=refresh_ttl_s,
                        path=SESSION_PATH, httponly=True, secure=secure, samesite="strict")
    response.set_cookie(CSRF_COOKIE, csrf_token, max_age=refresh_ttl_s, path="/",
                        httponly=False, secure=secure, samesite="strict")


def clear_session(response: Response, request: Request) -> None:
    secure = _secure(request)
    for name, path, httponly in ((ACCESS_COOKIE, "/", True),
                                 (REFRESH_COOKIE, SESSION_PATH, True),
                                 (CSRF_COOKIE, "/", False)):
        response.delete_cookie(name, path=path, secure=secure, httponly=httponly,
                               samesite="strict")
