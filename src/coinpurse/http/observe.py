"""What every request leaves behind: its id, one access log line, its metrics, and the
``RateLimit-*`` headers of the tightest limit it passed.

One pure ASGI middleware (no BaseHTTPMiddleware, no extra task) that does as little as it
can per request: it runs on the hottest money routes.

- ``X-Request-ID``: a caller's id is kept when it is 1 to 128 of ``A-Z a-z 0-9 . _ : -``
  (anything else is replaced, never echoed), else one is made; it is echoed on the answer,
  added to every log line written while the request runs, and to problem bodies.
- The access line names the route template (``/internal/v1/holds/{hold_id}``), never the
  raw path or query, which may carry what must not be logged.
"""

from __future__ import annotations

import os
import random
import re
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coinpurse.core import metrics
from coinpurse.core.errors import PROBLEM_CONTENT_TYPE, CoinpurseError
from coinpurse.core.logging import CURRENT_REQUEST, RequestInfo, access, get_logger
from coinpurse.http.responses import problem_response

REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_RE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED = "<unmatched>"
_PROBLEM = PROBLEM_CONTENT_TYPE.encode()


_random = random.Random(os.urandom(16))


def new_request_id() -> str:
    """96 random bits as hex. Unique, not secret: a seeded PRNG, since reading the system's
    random source on every request costs more than the rest of this middleware."""
    return f"{_random.getrandbits(96):024x}"


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = get_logger("coinpurse.access").bind()
        # Label children by (method, route, status): skips prometheus-client's label checks.
        self._series: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                if REQUEST_ID_RE.match(value):
                    request_id = value.decode()
                break
        if request_id is None:
            request_id = new_request_id()
        info = RequestInfo(request_id)
        token = CURRENT_REQUEST.set(info)
        status = 500
        problem = False
        started = False

        async def send_observed(message: Message) -> None:
            nonlocal status, problem, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = message.setdefault("headers", [])
                if not isinstance(headers, list):
                    headers = message["headers"] = list(headers)
                headers.append((b"x-request-id", request_id.encode()))
                if info.rate_limit is not None:
                    limit, remaining, reset_s, window_s = info.rate_limit
                    headers.append((b"ratelimit-limit", str(limit).encode()))
                    headers.append((b"ratelimit-remaining", str(remaining).encode()))
                    headers.append((b"ratelimit-reset", str(reset_s).encode()))
                    headers.append((b"ratelimit-policy", f"{limit};w={window_s}".encode()))
                if status >= 400:
                    problem = any(n == b"content-type" and v.startswith(_PROBLEM)
                                  for n, v in headers)
                else:
                    for n, _v in headers:
                        if n == b"idempotent-replayed":
                            metrics.IDEMPOTENT_REPLAYS.inc()
                            break
            elif problem and message["type"] == "http.response.body":
                problem = False  # the first chunk holds the whole problem
                _count_refusal(message.get("body", b""), status)
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except Exception as exc:
            # Answered here, with the request's id, instead of by Starlette's outermost
            # error middleware once the request's context is gone.
            self.log.exception("unhandled error", exc_info=exc)
            if started:
                raise
            await problem_response(CoinpurseError("an unexpected error occurred"))(
                scope, receive, send_observed)
        finally:
            CURRENT_REQUEST.reset(token)
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope["method"]
            key = (method, template, status)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = metrics.HTTP_REQUESTS.labels(
                    method, template, str(status))
            series.observe(elapsed)
            access(method, template, status, round(elapsed * 1000, 2), info.principal,
                   request_id)


def _count_refusal(body: bytes, status: int) -> None:
    try:
        code = orjson.loads(body).get("code")
    except (orjson.JSONDecodeError, AttributeError):
        code = None
    metrics.REFUSALS.labels(code if isinstance(code, str) else "unknown", str(status)).inc()
