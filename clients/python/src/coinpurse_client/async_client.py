"""Asyncio clients: ``AsyncServiceClient`` and ``AsyncUserClient``, on ``httpx.AsyncClient``.

The same operations, retries and errors as the blocking clients in ``client``."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import httpx

from coinpurse_client import _call
from coinpurse_client import _operations as ops
from coinpurse_client._call import PAGE_SIZE, Call
from coinpurse_client.client import USER_AGENT
from coinpurse_client.models import Page
from coinpurse_client.retry import OnRetry, RetryPolicy, next_delay_s

P = ParamSpec("P")
T = TypeVar("T")


class _AsyncBase:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | httpx.Timeout = 10.0,
        retry: RetryPolicy | None = None,
        on_retry: OnRetry | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._retry = retry or RetryPolicy()
        self._on_retry = on_retry
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers={"User-Agent": USER_AGENT})

    def _auth(self) -> Mapping[str, str]:
        raise NotImplementedError

    async def _run(self, call: Call[T]) -> T:
        """Send ``call`` with retries, and return its parsed answer or raise its error."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            outcome: httpx.Response | Exception
            try:
                outcome = await self._http.request(
                    call.method, call.path, params=call.params, json=call.json,
                    headers=_call.headers(call, self._auth()))
            except httpx.TransportError as exc:
                outcome = exc
            delay = next_delay_s(self._retry, outcome, attempt=attempt,
                                 elapsed_s=time.monotonic() - started,
                                 replay_safe=call.replay_safe)
            if delay is None:
                if isinstance(outcome, Exception):
                    raise _call.network_error(call, outcome, attempt) from outcome
                return _call.result(call, outcome)
            _call.notify(self._on_retry, call, attempt, delay, outcome)
            await asyncio.sleep(delay)

    async def _pages(self, call: Call[Page[T]]) -> AsyncIterator[Page[T]]:
        """Every page from ``call``'s cursor on."""
        while True:
            page = await self._run(call)
            yield page
            if page.next_cursor is None:
                return
            call = call.with_params(cursor=page.next_cursor)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        await self.aclose()


def _op(
    op: Callable[P, Call[T]],
) -> Callable[Concatenate[_AsyncBase, P], Coroutine[Any, Any, T]]:
    @functools.wraps(op)
    async def method(self: _AsyncBase, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(op(*args, **kwargs))

    return method


def _items(
    op: Callable[P, Call[Page[T]]],
) -> Callable[Concatenate[_AsyncBase, P], AsyncIterator[T]]:
    """Iterate over every item of every page (``limit`` is the page size, default 100)."""

    @functools.wraps(op)
    async def method(self: _AsyncBase, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        call = op(*args, **kwargs)
        if "limit" not in call.params:
            call = call.with_params(limit=PAGE_SIZE)
        async for page in self._pages(call):
            for item in page.data:
                yield item

    method.__doc__ = f"Every item, page after page (see ``{op.__name__}``)."
    return method


class AsyncServiceClient(_AsyncBase):
    """The internal service API, authenticated with a service key (``X-API-Key``).

    Money-moving calls get an ``Idempotency-Key`` (yours, or a fresh uuid4) that is reused
    on their retries, so each is applied at most once.
    """

    def __init__(
        self, base_url: str, api_key: str, *, service_name: str | None = None,
        timeout: float | httpx.Timeout = 10.0, retry: RetryPolicy | None = None,
        on_retry: OnRetry | None = None, http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, timeout=timeout, retry=retry, on_retry=on_retry,
                         http_client=http_client)
        self._headers = {"X-API-Key": api_key}
        if service_name is not None:
            self._headers["X-Service-Name"] = service_name

    def _auth(self) -> Mapping[str, str]:
        return self._headers

    credit = _op(ops.credit)
    debit = _op(ops.debit)
    transfer = _op(ops.transfer)
    transfer_batch = _op(ops.transfer_batch)
    balance = _op(ops.balance)
    account = _op(ops.account)
    get_transaction = _op(ops.get_transaction)
    list_transactions = _op(ops.user_transactions)
    iter_transactions = _items(ops.user_transactions)
    place_hold = _op(ops.place_hold)
    capture_hold = _op(ops.capture_hold)
    void_hold = _op(ops.void_hold)
    get_hold = _op(ops.get_hold)
    set_agency = _op(ops.set_agency)
    get_agency = _op(ops.get_agency)


class AsyncUserClient(_AsyncBase):
    """The user API, authenticated with a user's token (``Authorization: Bearer``).

    ``token`` may be a function, called before each request, for tokens that are refreshed.
    """

    def __init__(
        self, base_url: str, token: str | Callable[[], str], *,
        timeout: float | httpx.Timeout = 10.0, retry: RetryPolicy | None = None,
        on_retry: OnRetry | None = None, http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, timeout=timeout, retry=retry, on_retry=on_retry,
                         http_client=http_client)
        self._token = token

    def _auth(self) -> Mapping[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"}

    balance = _op(ops.my_balance)
    list_transactions = _op(ops.my_transactions)
    iter_transactions = _items(ops.my_transactions)
    gift_catalog = _op(ops.gift_catalog)
    send_gift = _op(ops.send_gift)
    list_gifts = _op(ops.my_gifts)
    iter_gifts = _items(ops.my_gifts)
    topup_packages = _op(ops.topup_packages)
    create_topup = _op(ops.create_topup)
    list_topups = _op(ops.my_topups)
    iter_topups = _items(ops.my_topups)
    get_topup = _op(ops.get_topup)
    verify_topup = _op(ops.verify_topup)
    request_withdrawal = _op(ops.request_withdrawal)
    list_withdrawals = _op(ops.my_withdrawals)
    iter_withdrawals = _items(ops.my_withdrawals)
    get_withdrawal = _op(ops.get_withdrawal)
    cancel_withdrawal = _op(ops.cancel_withdrawal)
    kyc_status = _op(ops.kyc_status)
    submit_kyc = _op(ops.submit_kyc)
    me = _op(ops.me)
