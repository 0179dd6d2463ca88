"""When to send a request again, and how long to wait first.

Retries are safe because every money-moving call carries an ``Idempotency-Key`` that stays
the same on every attempt: Coinpurse applies the call once and replays its answer. A request
without that guarantee (``replay_safe=False``) is retried only when it certainly never
reached the server (no connection, or refused by the rate limiter).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

# The connection was never made: the server cannot have seen the request.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
)
# Sent, maybe processed, no answer: retry only what may be replayed.
NO_ANSWER_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadTimeout,
    httpx.WriteTimeout,
)
# Gateways and an unavailable database: nothing was committed, or the key replays it.
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on retries: attempts in all, and seconds from the first attempt.

    The wait before attempt n+1 is the server's ``Retry-After`` when it sends one, else a
    random time in [0, min(backoff_max_s, backoff_base_s * 2**(n-1))] ("full jitter", so
    that many clients do not retry in step). A wait that would end past
    ``total_timeout_s`` is not started: the last error is raised at once.
    """

    max_attempts: int = 5
    total_timeout_s: float = 30.0
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.total_timeout_s < 0 or self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("times must not be negative")


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Passed to ``on_retry`` before each wait: for logs and metrics."""

    method: str
    path: str
    attempt: int
    delay_s: float
    idempotency_key: str | None
    status: int | None = None
    code: str | None = None
    error: Exception | None = None


OnRetry = Callable[[RetryEvent], None]


def retry_after_s(response: httpx.Response, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; None if absent or bad."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def problem_code(response: httpx.Response) -> str | None:
    """The ``code`` of a problem answer, if it is one."""
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def is_retryable(outcome: httpx.Response | Exception, *, replay_safe: bool) -> bool:
    """Whether this outcome may be retried; real refusals (4xx) never are."""
    if isinstance(outcome, Exception):
        if isinstance(outcome, NOT_SENT_ERRORS):
            return True
        return replay_safe and isinstance(outcome, NO_ANSWER_ERRORS)
    status = outcome.status_code
    if status == 429:  # refused before anything ran
        return True
    if status == 409:  # the first request with this key is still running
        return replay_safe and problem_code(outcome) == "idempotency_key_in_use"
    return replay_safe and status in UNAVAILABLE_STATUSES


def next_delay_s(
    policy: RetryPolicy,
    outcome: httpx.Response | Exception,
    *,
    attempt: int,
    elapsed_s: float,
    replay_safe: bool,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next attempt, or None to give up with this outcome."""
    if attempt >= policy.max_attempts or not is_retryable(outcome, replay_safe=replay_safe):
        return None
    jitter = (rng or random).uniform(
        0, min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt - 1)))
    server_wait = retry_after_s(outcome) if isinstance(outcome, httpx.Response) else None
    # The server knows when to come back; the small jitter keeps clients out of step.
    delay = server_wait + jitter * 0.1 if server_wait is not None else jitter
    if elapsed_s + delay > policy.total_timeout_s:
        return None
    return delay
