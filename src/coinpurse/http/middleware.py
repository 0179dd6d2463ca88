"""ASGI middleware shared by every route: body limits, NUL refusal, per-address limits."""

from __future__ import annotations

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coinpurse.core.errors import PayloadTooLarge, RateLimited, ValidationFailed
from coinpurse.http.responses import problem_response
from coinpurse.state import AppState

BATCH_PATH_SUFFIX = "/batch"


class BodyLimit:
    """Refuse bodies over the limit before reading them whole (413 ``payload_too_large``)."""

    def __init__(self, app: ASGIApp, limit: int, batch_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.batch_limit = batch_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.batch_limit if path.endswith(BATCH_PATH_SUFFIX) else self.limit
        too_large = PayloadTooLarge(f"the request body is larger than {limit} bytes")
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await problem_response(too_large)(scope, receive, send)
                return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(too_large.detail)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await problem_response(too_large)(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive``. An HTTPException, because FastAPI turns any other exception
    raised while it reads the body into a 400, so a chunked body over the limit would have
    been answered 422 ``validation_error`` instead of 413."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class RefuseNul:
    """Refuse a NUL in the path or the query string (422) before any route sees it.

    PostgreSQL can neither store nor compare text holding a NUL, so a parameter without a
    pattern carried one into a query and failed there as a 500; no API takes one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query: bytes = scope.get("query_string", b"")
            where = ("path" if "\x00" in scope["path"] else
                     "query" if b"%00" in query or b"\x00" in query else None)
            if where is not None:
                err = ValidationFailed(f"the {where} must not contain NUL characters", [
                    {"loc": [where], "msg": "must not contain NUL characters",
                     "type": "string_nul"}])
                await problem_response(err)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class AddressRateLimit:
    """Per-client-address limit on the user and admin APIs (backends calling /internal
    share few addresses, so they are limited per key instead). Behind trusted proxies the
    address is the forwarded one (``COINPURSE_TRUSTED_PROXIES``)."""

    PREFIXES = ("/api/", "/admin/")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.PREFIXES):
            state: AppState | None = getattr(scope["app"].state, "coinpurse", None)
            client = scope.get("client")
            if state is not None:
                try:
                    await state.rate_limits.hit(state.rate_limits.ip, "ip",
                                                client[0] if client else "unknown")
                except RateLimited as exc:
                    await problem_response(exc)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
