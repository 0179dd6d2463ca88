"""Rate limits per service key, per user, per client address and per sign-in target.

The ``limits`` library does the counting (moving window: exactly N in any window). Storage
is in-process memory by default; set ``COINPURSE_REDIS_URL=redis://host:6379`` (with the
``redis`` extra: ``pip install 'coinpurse[redis]'``) so that several server processes share
the counters. Each limit that a request passes records where it stands in the request's
``RequestInfo``; the HTTP edge answers with the tightest as ``RateLimit-*`` headers.
"""

from __future__ import annotations

import importlib.util
import math
import time
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from coinpurse.core.errors import RateLimited
from coinpurse.core.logging import current_request

if TYPE_CHECKING:
    from coinpurse.http.settings import HttpSettings

OFF = ("", "0", "off", "none")
_REDIS_SCHEMES = ("redis://", "rediss://", "redis+sentinel://", "redis+cluster://",
                  "redis+unix://")


def _item(spec: str) -> RateLimitItem | None:
    return None if spec.strip().lower() in OFF else parse(spec)


def check_spec(spec: str) -> str:
    """Validate a limit such as ``600/minute`` (or ``off``); raise ValueError if malformed."""
    if spec.strip().lower() not in OFF:
        parse(spec)
    return spec


def check_storage(uri: str) -> str:
    """``memory://``, or a Redis URL with the client library installed (the ``redis``
    extra): without it the server used to crash at start-up with an import traceback."""
    bare = uri.removeprefix("async+")
    if bare.startswith(_REDIS_SCHEMES):
        if importlib.util.find_spec("coredis") is None:
            raise ValueError("Redis rate-limit storage needs the redis extra: "
                             "pip install 'coinpurse[redis]'")
    elif not bare.startswith("memory://"):
        raise ValueError("must be memory:// or redis://host:port")
    return uri


class RateLimits:
    def __init__(self, settings: HttpSettings) -> None:
        uri = settings.rate_limit_uri
        storage = storage_from_string(uri if uri.startswith("async+") else f"async+{uri}")
        self._limiter = MovingWindowRateLimiter(storage)
        self.service = _item(settings.rate_limit_service)
        self.user = _item(settings.rate_limit_user)
        self.ip = _item(settings.rate_limit_ip)
        self.login = _item(settings.rate_limit_login)
        self.login_ip = _item(settings.rate_limit_login_ip)

    async def hit(self, item: RateLimitItem | None, *identifiers: str) -> None:
        """Count one request; raise RateLimited (429 with Retry-After) past the limit."""
        if item is None:
            return
        allowed = await self._limiter.hit(item, *identifiers)
        info = current_request()
        if allowed and info is None:
            return
        stats = await self._limiter.get_window_stats(item, *identifiers)
        reset_s = max(0, math.ceil(stats.reset_time - time.time()))
        if info is not None and (info.rate_limit is None
                                 or stats.remaining < info.rate_limit[1]):
            info.rate_limit = (item.amount, stats.remaining, reset_s,
                               item.get_expiry())
        if not allowed:
            retry_after = max(1, reset_s)
            raise RateLimited(f"too many requests; retry in {retry_after} s", retry_after)
