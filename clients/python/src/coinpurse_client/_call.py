"""One API call as data, shared by the sync and async clients: what to send, how to read it.

The clients differ only in how they send (``httpx.Client`` or ``httpx.AsyncClient``, sleep
or ``await asyncio.sleep``); the retry decisions and the answer handling live here and in
``retry``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from coinpurse_client.errors import (
    CoinpurseError,
    CoinpurseNetworkError,
    UnexpectedResponse,
    error_for,
)
from coinpurse_client.retry import OnRetry, RetryEvent, problem_code, retry_after_s

T = TypeVar("T")
PAGE_SIZE = 100  # the server's maximum page; fewer round trips when iterating


@dataclasses.dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, str | int] = dataclasses.field(default_factory=dict)
    idempotency_key: str | None = None
    replay_safe: bool = True
    """Whether sending it twice is harmless (reads, PUTs, calls with an Idempotency-Key)."""

    def with_params(self, **params: str | int | None) -> Call[T]:
        merged = {**self.params, **params}
        return dataclasses.replace(
            self, params={k: v for k, v in merged.items() if v is not None})


def path(template: str, **values: str) -> str:
    """Fill a path template, each value percent-encoded as one segment."""
    return template.format(**{k: quote(v, safe="") for k, v in values.items()})


def new_key(idempotency_key: str | None) -> str:
    """The caller's key, or a fresh one: made once per call, reused on its retries."""
    return idempotency_key if idempotency_key is not None else str(uuid.uuid4())


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body without the optional fields the caller left out."""
    return {k: v for k, v in fields.items() if v is not None}


def params(**values: str | int | None) -> dict[str, str | int]:
    return {k: v for k, v in values.items() if v is not None}


def headers(call: Call[Any], auth: Mapping[str, str]) -> dict[str, str]:
    sent = dict(auth)
    if call.idempotency_key is not None:
        sent["Idempotency-Key"] = call.idempotency_key
    return sent


def result(call: Call[T], response: httpx.Response) -> T:
    """The parsed answer of a 2xx; the matching exception for anything else."""
    if response.is_success:
        return call.parse(response.json() if response.content else None)
    raise error_from(response, call.idempotency_key)


def error_from(response: httpx.Response, idempotency_key: str | None) -> CoinpurseError:
    wait = retry_after_s(response)
    if problem_code(response) is not None:
        problem = response.json()
        return error_for(problem, status=response.status_code,
                         idempotency_key=idempotency_key, retry_after_s=wait)
    return UnexpectedResponse(
        {"title": f"HTTP {response.status_code}", "detail": response.text[:500]},
        status=response.status_code, idempotency_key=idempotency_key, retry_after_s=wait)


def network_error(call: Call[Any], exc: Exception, attempts: int) -> CoinpurseNetworkError:
    what = f"{call.method} {call.path} got no answer after {attempts} attempt(s): {exc!r}"
    if call.idempotency_key is not None:
        what += f"; retry with Idempotency-Key {call.idempotency_key!r} to learn the outcome"
    return CoinpurseNetworkError(what, idempotency_key=call.idempotency_key, attempts=attempts)


def notify(on_retry: OnRetry | None, call: Call[Any], attempt: int, delay_s: float,
           outcome: httpx.Response | Exception) -> None:
    if on_retry is None:
        return
    if isinstance(outcome, httpx.Response):
        event = RetryEvent(call.method, call.path, attempt, delay_s, call.idempotency_key,
                           status=outcome.status_code, code=problem_code(outcome))
    else:
        event = RetryEvent(call.method, call.path, attempt, delay_s, call.idempotency_key,
                           error=outcome)
    on_retry(event)
