"""The Python client against a real ``coinpurse serve`` (SQLite and PostgreSQL), sync and async.

Failures are real where they can be: a proxy that drops the connection after the server
answered, a request genuinely in flight (the ledger's lock held from outside), the server's
own rate limiter. A 503 with ``Retry-After`` comes from the proxy, as a load balancer sends it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest
from coinpurse_client import (
    AsyncServiceClient,
    AsyncUserClient,
    CoinpurseError,
    CoinpurseNetworkError,
    HoldNotOpen,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidSignature,
    KycSubmissionPending,
    NotFound,
    Posting,
    RateLimited,
    RetryEvent,
    RetryPolicy,
    ServiceClient,
    ServiceUnavailable,
    TransferRequest,
    UnexpectedResponse,
    UnknownCurrency,
    UserClient,
    ValidationFailed,
)
from pydantic import BaseModel

from tests.clients.conftest import Backend, create_key
from tests.clients.dblock import DbLock
from tests.clients.proxy import FaultProxy, Reply
from tests.conftest import Server
from tests.invariants import ledger_state

CREDIT = "/internal/v1/wallet/credit"
FAST = RetryPolicy(max_attempts=5, total_timeout_s=20, backoff_base_s=0.05, backoff_max_s=0.5)


class Either:
    """One scenario for both clients: the sync client runs in a worker thread (as a blocking
    app would call it), the async one is awaited."""

    def __init__(self, client: Any, is_async: bool) -> None:
        self.client = client
        self.is_async = is_async

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.is_async:
                return await method(*args, **kwargs)
            return await asyncio.to_thread(method, *args, **kwargs)

        return call

    async def collect(self, name: str, *args: Any, **kwargs: Any) -> list[Any]:
        method = getattr(self.client, name)
        if self.is_async:
            return [item async for item in method(*args, **kwargs)]
        return await asyncio.to_thread(lambda: list(method(*args, **kwargs)))

    async def close(self) -> None:
        if self.is_async:
            await self.client.aclose()
        else:
            self.client.close()


MODES = ["sync", "async"]


def service(base_url: str, api_key: str, mode: str, **options: Any) -> Either:
    options.setdefault("retry", FAST)
    cls = AsyncServiceClient if mode == "async" else ServiceClient
    return Either(cls(base_url, api_key, **options), mode == "async")


def user(base_url: str, token: str, mode: str, **options: Any) -> Either:
    options.setdefault("retry", FAST)
    cls = AsyncUserClient if mode == "async" else UserClient
    return Either(cls(base_url, token, **options), mode == "async")


def assert_complete(value: Any) -> None:
    """Every field the server sent is a declared field of the client's model (no drift)."""
    if isinstance(value, BaseModel):
        assert not value.model_extra, f"{type(value).__name__} lacks {set(value.model_extra)}"
        for name in type(value).model_fields:
            assert_complete(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            assert_complete(item)
    elif isinstance(value, dict):
        for item in value.values():
            assert_complete(item)


def credit_args(user_id: str, amount: int = 50, **extra: Any) -> dict[str, Any]:
    return {"user_id": user_id, "currency": "points", "amount": amount,
            "description": "Quest reward", "reference_id": f"quest-{uuid.uuid4().hex[:8]}",
            **extra}


class Recorder:
    """``on_retry`` that records events and can wake a waiting test."""

    def __init__(self) -> None:
        self.events: list[RetryEvent] = []
        self.in_use = threading.Event()

    def __call__(self, event: RetryEvent) -> None:
        self.events.append(event)
        if event.code == "idempotency_key_in_use":
            self.in_use.set()


@pytest.mark.parametrize("mode", MODES)
async def test_credit_after_a_dropped_connection_is_retried_with_its_key_and_applied_once(
    backend: Backend, proxy: FaultProxy, fresh_user: str, mode: str,
) -> None:
    proxy.plan("drop")  # the server commits the credit; its answer never reaches the client
    retries = Recorder()
    client = service(proxy.base_url, backend.api_key, mode, on_retry=retries)
    direct = service(backend.base_url, backend.api_key, mode)
    try:
        tx = await client.credit(**credit_args(fresh_user))

        sent = proxy.requests(CREDIT)
        assert [s.action for s in sent] == ["drop", "forward"]
        keys = {s.headers["idempotency-key"] for s in sent}
        assert keys == {tx.idempotency_key}
        assert uuid.UUID(tx.idempotency_key).version == 4
        assert len(retries.events) == 1
        assert isinstance(retries.events[0].error, httpx.RemoteProtocolError)

        wallets = await direct.balance(fresh_user)
        assert wallets.wallets["points"].balance == 50
        history = await direct.collect("iter_transactions", fresh_user)
        assert [h.transaction_id for h in history] == [tx.id]
        assert tx.balance_after == 50
        assert (await direct.get_transaction(tx.id)).idempotency_key == tx.idempotency_key
    finally:
        await client.close()
        await direct.close()


@pytest.mark.parametrize("mode", MODES)
async def test_in_flight_409_is_waited_out_and_the_replayed_transaction_returned(
    backend: Backend, fresh_user: str, mode: str,
) -> None:
    retries = Recorder()
    # Patient enough for the lock's release and the first request's commit on a busy machine.
    patient = RetryPolicy(max_attempts=8, total_timeout_s=30, backoff_base_s=0.2,
                          backoff_max_s=2)
    client = service(backend.base_url, backend.api_key, mode, on_retry=retries, retry=patient)
    key = f"race-{uuid.uuid4()}"
    args = credit_args(fresh_user, amount=70, idempotency_key=key)
    lock = DbLock(backend.db_url)  # the first request to arrive waits inside the ledger
    try:
        first = asyncio.create_task(client.credit(**args))
        second = asyncio.create_task(client.credit(**args))
        # The other one got a genuine 409 idempotency_key_in_use and is backing off.
        assert await asyncio.to_thread(retries.in_use.wait, 15)
    finally:
        lock.release()
    a, b = await asyncio.gather(first, second)
    await client.close()

    assert a.id == b.id
    assert a.idempotency_key == key
    in_use = [e for e in retries.events if e.code == "idempotency_key_in_use"]
    assert in_use and all(e.status == 409 and e.idempotency_key == key for e in in_use)
    direct = service(backend.base_url, backend.api_key, mode)
    wallets = await direct.balance(fresh_user)
    assert wallets.wallets["points"].balance == 70
    assert len(await direct.collect("iter_transactions", fresh_user)) == 1
    await direct.close()


PROBLEM_503 = json.dumps({"type": "/problems/service_unavailable", "title": "Unavailable",
                          "status": 503, "detail": "try later",
                          "code": "service_unavailable"}).encode()


def unavailable(retry_after: str) -> Reply:
    return Reply(503, {"Retry-After": retry_after,
                       "Content-Type": "application/problem+json"}, PROBLEM_503)


@pytest.mark.parametrize("mode", MODES)
async def test_503_with_retry_after_is_retried_after_that_wait(
    backend: Backend, proxy: FaultProxy, fresh_user: str, mode: str,
) -> None:
    proxy.plan(unavailable("1"))
    retries = Recorder()
    client = service(proxy.base_url, backend.api_key, mode, on_retry=retries)
    tx = await client.credit(**credit_args(fresh_user, amount=5))
    await client.close()

    assert [s.action for s in proxy.requests(CREDIT)] == ["503", "forward"]
    assert len({s.headers["idempotency-key"] for s in proxy.requests(CREDIT)}) == 1
    (event,) = retries.events
    assert (event.status, event.code) == (503, "service_unavailable")
    assert 1.0 <= event.delay_s < 1.1
    assert tx.wallet.balance == 5


async def test_retries_stop_at_max_attempts_and_raise_the_last_error(
    backend: Backend, proxy: FaultProxy, fresh_user: str,
) -> None:
    proxy.plan(*[unavailable("0")] * 10)
    policy = RetryPolicy(max_attempts=3, total_timeout_s=20, backoff_base_s=0.01)
    async with AsyncServiceClient(proxy.base_url, backend.api_key, retry=policy) as client:
        with pytest.raises(ServiceUnavailable) as caught:
            await client.credit(**credit_args(fresh_user))
    assert len(proxy.requests(CREDIT)) == 3
    assert caught.value.status == 503
    assert caught.value.idempotency_key is not None


def test_a_retry_after_beyond_the_time_budget_is_not_waited(
    backend: Backend, proxy: FaultProxy, fresh_user: str,
) -> None:
    proxy.plan(unavailable("120"))
    started = time.monotonic()
    with ServiceClient(proxy.base_url, backend.api_key,
                       retry=RetryPolicy(total_timeout_s=10)) as client, \
            pytest.raises(ServiceUnavailable) as caught:
        client.credit(**credit_args(fresh_user))
    assert time.monotonic() - started < 5  # not the 120 s the server asked for
    assert caught.value.retry_after_s == 120
    assert len(proxy.requests(CREDIT)) == 1


def test_no_connection_at_all_raises_a_network_error_with_the_key(fresh_user: str) -> None:
    from tests.pgserver import free_port

    policy = RetryPolicy(max_attempts=2, backoff_base_s=0.01)
    with ServiceClient(f"http://127.0.0.1:{free_port()}", "cp_x", retry=policy) as client, \
            pytest.raises(CoinpurseNetworkError) as caught:
        client.credit(**credit_args(fresh_user, idempotency_key="k-unreachable"))
    assert caught.value.idempotency_key == "k-unreachable"
    assert caught.value.attempts == 2
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("mode", MODES)
async def test_429_from_the_rate_limiter_is_retried_after_retry_after_and_bounded(
    backend: Backend, limited: Server, fresh_user: str, mode: str,
) -> None:
    retries = Recorder()
    key = await asyncio.to_thread(create_key, backend.db_url)
    client = service(limited.base_url, key, mode, on_retry=retries)
    for _ in range(3):
        await client.credit(**credit_args(fresh_user, amount=1))
    await client.close()
    rate_limited = [e for e in retries.events if e.status == 429]
    assert rate_limited and rate_limited[0].code == "rate_limited"
    assert rate_limited[0].delay_s >= 1.0

    # A budget shorter than Retry-After: the third call raises at once, nothing applied.
    key = await asyncio.to_thread(create_key, backend.db_url)
    impatient = service(limited.base_url, key, mode, retry=RetryPolicy(total_timeout_s=0.5))
    await impatient.credit(**credit_args(fresh_user, amount=10))
    await impatient.credit(**credit_args(fresh_user, amount=10))
    with pytest.raises(RateLimited) as caught:
        await impatient.credit(**credit_args(fresh_user, amount=10))
    await impatient.close()
    assert caught.value.retry_after_s is not None and caught.value.retry_after_s >= 1

    direct = service(backend.base_url, backend.api_key, mode)
    assert (await direct.balance(fresh_user)).wallets["points"].balance == 3 + 20
    await direct.close()


@pytest.mark.parametrize("mode", MODES)
async def test_refusals_raise_their_exception_at_once_without_retry(
    backend: Backend, proxy: FaultProxy, fresh_user: str, mode: str,
) -> None:
    retries = Recorder()
    client = service(proxy.base_url, backend.api_key, mode, on_retry=retries)
    try:
        await client.credit(**credit_args(fresh_user, amount=30))
        with pytest.raises(InsufficientFunds) as caught:
            await client.debit(**credit_args(fresh_user, amount=31))
        err = caught.value
        assert (err.code, err.status) == ("insufficient_funds", 422)
        assert err.title and err.detail and err.problem["code"] == "insufficient_funds"
        assert err.idempotency_key is not None

        key = f"k-{uuid.uuid4()}"
        await client.credit(**credit_args(fresh_user, amount=1, idempotency_key=key))
        with pytest.raises(IdempotencyKeyReused):
            await client.credit(**credit_args(fresh_user, amount=2, idempotency_key=key))
        with pytest.raises(UnknownCurrency):
            await client.credit(**{**credit_args(fresh_user), "currency": "nope"})
        with pytest.raises(ValidationFailed) as invalid:
            await client.credit(**credit_args(fresh_user, amount=0))
        assert invalid.value.errors and invalid.value.errors[0]["loc"][-1] == "amount"
        with pytest.raises(NotFound):
            await client.get_transaction("no-such-transaction")
    finally:
        await client.close()
    assert retries.events == []
    assert len(proxy.requests(CREDIT)) == 5
    assert len(proxy.requests("/internal/v1/wallet/debit")) == 1
    direct = service(backend.base_url, backend.api_key, mode)
    assert (await direct.balance(fresh_user)).wallets["points"].balance == 31
    await direct.close()


def test_unknown_codes_and_foreign_answers_become_errors(
    backend: Backend, proxy: FaultProxy,
) -> None:
    novel = {"type": "/problems/brand_new", "title": "New", "status": 422,
             "detail": "a code from a newer server", "code": "brand_new"}
    proxy.plan(Reply(422, {"Content-Type": "application/problem+json"},
                     json.dumps(novel).encode()),
               Reply(400, {"Content-Type": "text/html"}, b"<h1>Bad gateway config</h1>"))
    with ServiceClient(proxy.base_url, backend.api_key) as client:
        with pytest.raises(CoinpurseError) as caught:
            client.balance("anyone")
        assert type(caught.value) is CoinpurseError
        assert (caught.value.code, caught.value.status) == ("brand_new", 422)
        assert caught.value.problem == novel
        with pytest.raises(UnexpectedResponse) as foreign:
            client.balance("anyone")
        assert foreign.value.status == 400 and "Bad gateway" in foreign.value.detail


@pytest.mark.parametrize("mode", MODES)
async def test_pagination_returns_250_transactions_once_each_newest_first(
    backend: Backend, proxy: FaultProxy, fresh_user: str, mode: str,
) -> None:
    client = service(backend.base_url, backend.api_key, mode)
    transfers = [
        TransferRequest(postings=[Posting(source="service:games", destination=f"user:{fresh_user}",
                                          amount=i + 1, currency="points")],
                        description=f"Reward {i}", reference_id=f"p-{i}")
        for i in range(250)
    ]
    outcome = await client.transfer_batch(transfers)
    assert (outcome.posted, outcome.rejected) == (250, 0)
    await client.close()

    via_proxy = service(proxy.base_url, backend.api_key, mode)
    audit = await via_proxy.collect("iter_transactions", fresh_user)
    await via_proxy.close()
    assert len(proxy.requests(f"/internal/v1/wallet/transactions/{fresh_user}")) == 3  # 100s
    mine = user(backend.base_url, backend.token(fresh_user), mode)
    own = await mine.collect("iter_transactions", currency="points", limit=7)
    first_page = await mine.list_transactions(limit=10)
    await mine.close()

    newest_first = [f"p-{i}" for i in reversed(range(250))]
    for history in (audit, own):
        assert [h.reference_id for h in history] == newest_first
        assert len({h.id for h in history}) == 250
        assert history[0].balance_after == sum(range(1, 251))
        assert_complete(history[0])
    assert [h.id for h in first_page.data] == [h.id for h in own[:10]]
    assert first_page.next_cursor is not None


@pytest.mark.parametrize("mode", MODES)
async def test_every_service_operation_round_trips(
    backend: Backend, fresh_user: str, mode: str,
) -> None:
    client = service(backend.base_url, backend.api_key, mode)
    try:
        credited = await client.credit(**credit_args(fresh_user, amount=1000,
                                                     metadata={"quest": 42},
                                                     internal_notes="ops only"))
        debited = await client.debit(**credit_args(fresh_user, amount=100))
        moved = await client.transfer(
            postings=[{"source": f"user:{fresh_user}", "destination": "platform:fees",
                       "amount": 50, "currency": "points"}],
            description="Fee", reference_id="fee-1", kind="fee")
        hold = await client.place_hold(user_id=fresh_user, currency="points", amount=200,
                                       description="Call", reference_id="call-1",
                                       expires_in_s=600)
        wallets = await client.balance(fresh_user)
        captured = await client.capture_hold(hold.id, amount=150)
        with pytest.raises(HoldNotOpen):
            await client.void_hold(hold.id)
        other = await client.place_hold(user_id=fresh_user, currency="points", amount=10,
                                        description="Call", reference_id="call-2")
        voided = await client.void_hold(other.id)
        fetched = await client.get_hold(hold.id)
        agency = await client.set_agency(fresh_user, "agency-7")
        read_agency = await client.get_agency(fresh_user)
        cleared = await client.set_agency(fresh_user, None)
        fees = await client.account("platform:fees")
        audit = await client.get_transaction(credited.id)
        page = await client.list_transactions(fresh_user, limit=2)
    finally:
        await client.close()

    assert credited.metadata == {"quest": 42} and credited.internal_notes == "ops only"
    assert debited.wallet.balance == 900
    assert moved.kind == "fee" and moved.postings[0].destination == "platform:fees"
    assert hold.status == "held" and hold.wallet is not None and hold.wallet.available == 650
    assert wallets.wallets["points"].held == 200
    assert (captured.status, captured.captured_amount, captured.released_amount) == (
        "captured", 150, 50)
    assert voided.status == "voided" and fetched.status == "captured"
    assert agency.agency_id == read_agency.agency_id == "agency-7"
    assert cleared.agency_id is None
    assert fees.balances["points"].balance >= 50
    assert sorted(e.amount for e in audit.entries) == [-1000, 1000]
    assert len(page.data) == 2 and page.next_cursor is not None
    for answer in (credited, debited, moved, hold, wallets, captured, voided, fetched, agency,
                   fees, audit, page):
        assert_complete(answer)


@pytest.mark.parametrize("mode", MODES)
async def test_every_user_operation_round_trips(
    backend: Backend, fresh_user: str, mode: str,
) -> None:
    giver, receiver = fresh_user, f"{fresh_user}-r"
    async with httpx.AsyncClient(base_url=backend.base_url) as raw:
        funding = service(backend.base_url, backend.api_key, mode)
        await funding.credit(**credit_args(giver, amount=500))
        await funding.close()
        client = user(backend.base_url, backend.token(giver), mode)
        try:
            me = await client.me()
            catalog = await client.gift_catalog()
            gift = await client.send_gift(to_user_id=receiver, gift_type=catalog[0].gift_type,
                                          message="gg")
            by_amount = await client.send_gift(to_user_id=receiver, amount=15,
                                               currency="points")
            sent = await client.collect("iter_gifts", direction="sent")
            packages = await client.topup_packages()
            order = await client.create_topup(package_id=packages.data[0].id)
            with pytest.raises(InvalidSignature):
                await client.verify_topup(order.id, payment_id="mockpay_forged",
                                          signature="0" * 64)
            # Pay on the mock provider's checkout page, as the user's browser would.
            paid = await raw.post(f"/mock-checkout/{order.id}/pay")
            assert paid.status_code == 303, paid.text
            proof = dict(httpx.URL(paid.headers["location"]).params)
            verified = await client.verify_topup(order.id, payment_id=proof["payment_id"],
                                                 signature=proof["signature"])
            orders = await client.collect("iter_topups")
            fetched_order = await client.get_topup(order.id)
            submitted = await client.submit_kyc(tier=1, full_name="Ada Lovelace",
                                                date_of_birth=date(1990, 12, 10), country="GB")
            withdrawal = await client.request_withdrawal(
                currency="points", amount=20, destination={"type": "upi", "vpa": "a@bank"})
            cancelled = await client.cancel_withdrawal(withdrawal.id)
            cancelled_again = await client.cancel_withdrawal(withdrawal.id)
            with pytest.raises(KycSubmissionPending):  # one submission at a time
                await client.submit_kyc(tier=1, full_name="Ada Lovelace",
                                        date_of_birth=date(1990, 12, 10), country="GB")
            withdrawals = await client.collect("iter_withdrawals")
            fetched_withdrawal = await client.get_withdrawal(withdrawal.id)
            kyc = await client.kyc_status()
            wallets = await client.balance()
        finally:
            await client.close()
        receiving = user(backend.base_url, backend.token(receiver), mode)
        received = await receiving.collect("iter_gifts", direction="received")
        await receiving.close()

    assert me.id == giver
    assert gift.giver_wallet.balance == 500 - catalog[0].price
    assert by_amount.amount == 15 and by_amount.receiver_amount + by_amount.platform_fee == 15
    assert [g.id for g in sent] == [by_amount.id, gift.id]
    assert [g.id for g in received] == [by_amount.id, gift.id]
    assert verified.status == "succeeded" and verified.transaction_id is not None
    assert [o.id for o in orders] == [order.id] and fetched_order.status == "succeeded"
    assert withdrawal.status == "pending" and withdrawal.wallet is not None
    assert cancelled.status == cancelled_again.status == "cancelled"
    assert [w.id for w in withdrawals] == [withdrawal.id]
    assert fetched_withdrawal.status == "cancelled"
    assert submitted.status == "pending" and kyc.submission is not None
    assert kyc.submission.id == submitted.id
    expected = 500 - catalog[0].price - 15 + packages.data[0].total
    assert wallets.wallets["points"].balance == expected
    for answer in (me, catalog, gift, by_amount, sent, packages, order, verified, orders,
                   withdrawal, cancelled, withdrawals, submitted, kyc, wallets):
        assert_complete(answer)


def test_the_books_balance_after_the_client_tests(backend: Backend) -> None:
    state = ledger_state(backend.db_url)
    assert all(total == 0 for total in state["sums"].values()), state["sums"]
    assert state["negative"] == [] and state["mismatched"] == []
