"""The retry decisions on their own: which outcomes are retried, how long the waits are."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from coinpurse_client import CoinpurseError
from coinpurse_client.errors import ERRORS_BY_CODE, error_for
from coinpurse_client.retry import RetryPolicy, is_retryable, next_delay_s, retry_after_s

from coinpurse.app import create_app
from coinpurse.config import Settings

POLICY = RetryPolicy(max_attempts=4, total_timeout_s=10, backoff_base_s=0.5, backoff_max_s=2)


def answer(status: int, code: str | None = None, **headers: str) -> httpx.Response:
    body = {"code": code, "status": status} if code else None
    return httpx.Response(status, json=body, headers={
        **headers, "content-type": "application/problem+json"})


@pytest.mark.parametrize(("outcome", "replay_safe", "expected"), [
    (httpx.ConnectError("refused"), False, True),  # never reached the server
    (httpx.ConnectTimeout("slow"), False, True),
    (httpx.RemoteProtocolError("closed"), True, True),  # maybe applied: only with a key
    (httpx.RemoteProtocolError("closed"), False, False),
    (httpx.ReadTimeout("slow"), True, True),
    (httpx.ReadTimeout("slow"), False, False),
    (httpx.UnsupportedProtocol("ftp"), True, False),
    (answer(429, "rate_limited"), False, True),  # refused before anything ran
    (answer(409, "idempotency_key_in_use"), True, True),
    (answer(409, "hold_not_open"), True, False),  # a real refusal
    (answer(503, "service_unavailable"), True, True),
    (answer(503, "service_unavailable"), False, False),
    (answer(502), True, True),
    (answer(500, "internal_error"), True, False),
    (answer(422, "insufficient_funds"), True, False),
    (answer(422, "idempotency_key_reused"), True, False),
    (answer(401, "unauthorized"), True, False),
    (answer(404, "not_found"), True, False),
])
def test_what_is_retried(outcome: httpx.Response | Exception, replay_safe: bool,
                         expected: bool) -> None:
    assert is_retryable(outcome, replay_safe=replay_safe) is expected


def test_backoff_is_full_jitter_doubling_up_to_the_cap() -> None:
    rng = random.Random(7)
    error = httpx.ConnectError("refused")
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0)]:
        delays = [next_delay_s(POLICY, error, attempt=attempt, elapsed_s=0, replay_safe=True,
                               rng=rng) for _ in range(200)]
        assert all(d is not None and 0 <= d <= cap for d in delays)
        assert max(d for d in delays if d is not None) > cap * 0.8  # it does spread out
    assert next_delay_s(POLICY, error, attempt=4, elapsed_s=0, replay_safe=True) is None


def test_retry_after_is_honoured_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_s(answer(429, "rate_limited", **{"Retry-After": "3"})) == 3
    assert retry_after_s(answer(503, "x", **{"Retry-After": later}), now=now) == 30
    assert retry_after_s(answer(503, "x", **{"Retry-After": "soon"})) is None
    delay = next_delay_s(POLICY, answer(429, "rate_limited", **{"Retry-After": "3"}),
                         attempt=1, elapsed_s=0, replay_safe=True)
    assert delay is not None and 3 <= delay <= 3.05


def test_no_wait_starts_that_would_end_past_the_time_budget() -> None:
    slow = answer(503, "service_unavailable", **{"Retry-After": "8"})
    assert next_delay_s(POLICY, slow, attempt=1, elapsed_s=1, replay_safe=True) is not None
    assert next_delay_s(POLICY, slow, attempt=1, elapsed_s=3, replay_safe=True) is None


def test_every_problem_code_the_server_documents_has_an_exception_class() -> None:
    doc = create_app(Settings()).openapi()
    codes = set(doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
    missing = sorted(codes - set(ERRORS_BY_CODE))
    assert not missing, (f"add an exception class for {missing} in "
                         "clients/python/src/coinpurse_client/errors.py (and the TypeScript "
                         "client's errors.ts)")
    for code, cls in ERRORS_BY_CODE.items():
        err = error_for({"code": code, "title": "t", "detail": "d"}, status=422)
        assert type(err) is cls and err.code == code and isinstance(err, CoinpurseError)
