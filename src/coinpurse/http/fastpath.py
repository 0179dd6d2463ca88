"""The hot routes without FastAPI's per-request machinery (issue 16).

FastAPI resolves a tree of dependencies, builds a ``Request``, decodes the JSON with the
standard library and validates the Python objects again for every call: about a quarter of
the CPU a transfer costs. For a few hot method+path pairs this ASGI layer, mounted inside
every middleware and ahead of the router, does the same work directly:

* the body is validated from its raw bytes by the route's own schema
  (``TypeAdapter.validate_json``, the annotation of the endpoint's ``body`` parameter);
* the caller is resolved by the SAME dependency functions (``http.deps``: the cached key
  look-up, the rate limits, the token check), called in the order FastAPI calls them;
* the SAME endpoint function of the domain's ``routes.py`` is called and its ``Response`` sent.

So no rule and no shape lives here. Byte-for-byte equality with the FastAPI route is kept by
construction: anything the fast path cannot decide without side effects (malformed or
invalid JSON, an unexpected content type, a bad header, an odd query string) is handed,
untouched, to FastAPI, which gives its usual answer; only requests that pass every pure
check are served here, and what the dependency functions or the endpoint raise is rendered
by the app's own exception handlers. ``tests/http/test_fastpath.py`` sends the same
requests, good and bad, to both paths and compares the answers.

At start-up each fast route is checked against the FastAPI route it shadows (same endpoint,
same dependencies under the same parameter names): a route whose signature changed fails
loudly instead of being served with stale assumptions.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, get_type_hints

import fastapi.routing
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coinpurse.core.pages import PAGE_MAX
from coinpurse.core.types import IDEMPOTENCY_KEY_RE, USER_ID_RE
from coinpurse.http import deps

Endpoint = Callable[..., Awaitable[Response]]

# What each dependency parameter of a fast route must be, by name (checked at start-up).
_DEPENDENCIES: dict[str, Callable[..., Any]] = {
    "state": deps.get_state,
    "key": deps.current_service,
    "idem": deps.idempotency_key,
    "user_id": deps.current_user,
}
_USER_ID = re.compile(USER_ID_RE)
# Query values served here; anything else (percent-escapes, repeats, unknown names) goes to
# FastAPI. ``limit`` also within its bounds, ``currency`` within its max_length (16).
_QUERY_VALUES = {
    "limit": re.compile(r"^[1-9][0-9]{0,2}$"),
    "currency": re.compile(r"^[A-Za-z0-9_]{1,16}$"),
    "cursor": re.compile(r"^[A-Za-z0-9_-]{1,64}$"),
}
_X_SERVICE_NAME_MAX = 128  # http.deps.current_service's Header(max_length=128)


# Requests served here and handed on to FastAPI, per process (tests check the fast path is
# taken; cheap enough to keep).
counts = {"served": 0, "handed_on": 0}


class _Fallback(Exception):
    """This request is FastAPI's to answer (nothing has been done yet)."""


@dataclass(frozen=True, slots=True)
class FastRoute:
    """One method+path served here. ``path`` ends with ``{user_id}`` for a path parameter;
    ``query`` maps query names to the endpoint's parameter names."""

    method: str
    path: str
    endpoint: Endpoint
    body: TypeAdapter[Any] | None = field(default=None, compare=False)
    query: dict[str, str] = field(default_factory=dict, compare=False)
    defaults: dict[str, Any] = field(default_factory=dict, compare=False)
    params: tuple[str, ...] = ()

    @classmethod
    def of(cls, method: str, path: str, endpoint: Endpoint,
           query: dict[str, str] | None = None) -> FastRoute:
        signature = inspect.signature(endpoint)
        hints = get_type_hints(endpoint, include_extras=True)
        body = TypeAdapter(hints["body"]) if "body" in signature.parameters else None
        query = query or {}
        defaults = {name: signature.parameters[name].default for name in query.values()}
        return cls(method, path, endpoint, body, query, defaults,
                   tuple(signature.parameters))

    @property
    def prefix(self) -> str | None:
        return self.path.removesuffix("{user_id}") if self.path.endswith("{user_id}") else None


class FastPath:
    """ASGI middleware: serves the ``routes`` it was given, hands everything else on."""

    def __init__(self, app: ASGIApp, routes: Sequence[FastRoute]) -> None:
        self.app = app
        self.exact = {(r.method, r.path): r for r in routes if r.prefix is None}
        self.prefixed = [r for r in routes if r.prefix is not None]
        # Each fast route's FastAPI route, found on the first request (the app is in the
        # scope): put in the scope as the router would, for whoever reads it afterwards
        # (the access log and the metrics name the route template).
        self.shadowed: dict[FastRoute, Any] | None = None

    def _route(self, method: str, path: str) -> tuple[FastRoute, str | None] | None:
        route = self.exact.get((method, path))
        if route is not None:
            return route, None
        for route in self.prefixed:
            assert route.prefix is not None
            if method == route.method and path.startswith(route.prefix):
                return route, path[len(route.prefix):]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        found = self._route(scope["method"], scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        route, path_user = found
        if self.shadowed is None:
            routes = [*self.exact.values(), *self.prefixed]
            self.shadowed = dict(zip(routes, check_routes(scope["app"], routes), strict=True))
        scope["route"] = self.shadowed[route]
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {"user_id": path_user} if path_user is not None else {}
        received: list[Message] = []
        try:
            await self._serve(route, path_user, scope, receive, send, received)
        except _Fallback:
            counts["handed_on"] += 1
            await self.app(scope, _replay(received, receive), send)
        else:
            counts["served"] += 1

    async def _serve(self, route: FastRoute, path_user: str | None, scope: Scope,
                     receive: Receive, send: Send, received: list[Message]) -> None:
        # 1. Pure checks: a failure hands the request to FastAPI, untouched.
        headers = _headers(scope)
        body: Any = None
        if route.body is not None:
            media = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
            if media != b"application/json":
                raise _Fallback
            raw = await _read_body(receive, received)
            try:
                body = route.body.validate_json(raw)
            except ValidationError:
                raise _Fallback from None
        if path_user is not None and not _USER_ID.match(path_user):
            raise _Fallback
        query = _query(scope.get("query_string", b""), route)
        service_name = headers.get(b"x-service-name")
        if service_name is not None and len(service_name) > _X_SERVICE_NAME_MAX:
            raise _Fallback
        idem = headers.get(b"idempotency-key")
        if "idem" in route.params and (idem is None or not IDEMPOTENCY_KEY_RE.match(
                idem.decode("latin-1"))):
            raise _Fallback
        # 2. The route's own dependency functions, in its parameter order, then the endpoint.
        request = Request(scope, receive)
        try:
            state = await deps.get_state(request)
            args: dict[str, Any] = {}
            for name in route.params:
                if name == "body":
                    args[name] = body
                elif name == "state":
                    args[name] = state
                elif name == "key":
                    args[name] = await deps.current_service(
                        state, await deps._api_key_header(request),
                        service_name.decode("latin-1") if service_name is not None else None)
                elif name == "idem":
                    assert idem is not None
                    args[name] = await deps.idempotency_key(idem.decode("latin-1"))
                elif name == "user_id":
                    if path_user is not None:
                        args[name] = path_user
                    else:
                        principal = await deps.current_principal(
                            state, request, await deps._bearer(request))
                        args[name] = await deps.current_user(principal)
                else:
                    args[name] = query.get(name, route.defaults.get(name))
            response = await route.endpoint(**args)
        except Exception as exc:  # answered by the app's own handlers
            response = await _handled(scope["app"], request, exc)
        await response(scope, receive, send)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The first value of each header, as Starlette's ``Headers.get`` gives it."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        found.setdefault(name, value)
    return found


async def _read_body(receive: Receive, received: list[Message]) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            raise _Fallback
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(received: list[Message], receive: Receive) -> Receive:
    """The messages already read, then the server's own ``receive``."""
    pending = list(received)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _query(raw: bytes, route: FastRoute) -> dict[str, Any]:
    """The query parameters, when each is known, given once and plainly spelt."""
    found: dict[str, Any] = {}
    if not raw:
        return found
    for part in raw.decode("latin-1").split("&"):
        name, sep, value = part.partition("=")
        param = route.query.get(name)
        pattern = _QUERY_VALUES.get(name)
        if not sep or param is None or pattern is None or param in found \
                or not pattern.match(value):
            raise _Fallback
        if name == "limit":
            number = int(value)
            if number > PAGE_MAX:
                raise _Fallback
            found[param] = number
        else:
            found[param] = value
    return found


async def _handled(app: Any, request: Request, exc: Exception) -> Response:
    """The answer the app's exception handlers give (``http.handlers``), found the way
    Starlette finds them: by the exception's classes, nearest first."""
    handlers: dict[Any, Callable[..., Any]] = app.exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            response: Response = await handler(request, exc)
            return response
    raise exc


def _flat_routes(app: Any) -> list[Any]:
    """The app's routes in the order the router tries them; FastAPI 0.16x nests included
    routers (its own helper flattens them), older versions list them flat."""
    flatten = getattr(fastapi.routing, "_iter_included_route_candidates", None)
    return list(flatten(app.router.routes)) if flatten is not None else list(app.router.routes)


def check_routes(app: Any, routes: Sequence[FastRoute]) -> list[Any]:
    """Each fast route must shadow the FastAPI route the router would pick for it, with the
    same endpoint and the dependencies this module resolves under the same names; returns
    those routes."""
    shadowed: list[Any] = []
    for fast in routes:
        path = fast.path.replace("{user_id}", "u1")
        scope = {"type": "http", "method": fast.method, "path": path, "root_path": ""}
        matched = next((r for r in _flat_routes(app) if r.matches(scope)[0] == Match.FULL),
                       None)
        if matched is None or getattr(matched, "endpoint", None) is not fast.endpoint:
            raise RuntimeError(f"fast path {fast.method} {fast.path}: the router picks "
                               f"{getattr(matched, 'endpoint', None)!r}, not {fast.endpoint!r}")
        dependant = matched.dependant
        found = {d.name: d.call for d in dependant.dependencies}
        expected = {n: _DEPENDENCIES[n] for n in fast.params if n in _DEPENDENCIES
                    and not (n == "user_id" and fast.prefix is not None)}
        queries = {q.name: q.alias for q in dependant.query_params}
        paths = {p.name for p in dependant.path_params}
        body_ok = (fast.body is None) == (dependant.body_params == [])
        if found != expected or queries != {v: k for k, v in fast.query.items()} \
                or paths != ({"user_id"} if fast.prefix is not None else set()) \
                or not body_ok or dependant.header_params or dependant.cookie_params:
            raise RuntimeError(f"fast path {fast.method} {fast.path}: the route's parameters "
                               f"changed ({found}, queries {queries}); update http/fastpath.py")
        shadowed.append(matched)
    return shadowed
