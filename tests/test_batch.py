"""The batch API and group commit: shared commits change no result."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from coinpurse.app import create_app
from coinpurse.config import Settings
from tests.conftest import MakeKey


def _transfer(src: str, dst: str, amount: int, ref: str) -> dict[str, Any]:
    return {"postings": [{"source": src, "destination": dst, "amount": amount,
                          "currency": "points"}],
            "description": "pay", "reference_id": ref}


async def _fund(client: httpx.AsyncClient, key: str, user: str, amount: int) -> None:
    r = await client.post("/internal/v1/wallet/credit",
                          headers={"X-API-Key": key, "Idempotency-Key": f"fund-{user}"},
                          json={"user_id": user, "currency": "points", "amount": amount,
                                "description": "fund", "reference_id": "fund"})
    assert r.status_code == 201, r.text


async def _balance(client: httpx.AsyncClient, key: str, address: str) -> int:
    r = await client.get(f"/internal/v1/accounts/{address}", headers={"X-API-Key": key})
    assert r.status_code == 200
    balance: int = r.json()["balances"]["points"]["balance"]
    return balance


async def test_batch_mixes_posted_and_refused_on_one_hot_account(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key()
    await _fund(client, key, "a", 100)
    body = {"transfers": [_transfer("user:a", "user:hot", 30, f"t{i}") for i in range(5)]}
    r = await client.post("/internal/v1/transfers/batch", json=body,
                          headers={"X-API-Key": key, "Idempotency-Key": "b1"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["posted"], out["rejected"]) == (3, 2)
    assert [x["status"] for x in out["results"]] == ["posted"] * 3 + ["rejected"] * 2
    assert {x["code"] for x in out["results"][3:]} == {"insufficient_funds"}
    assert [x["reference_id"] for x in out["results"]] == [f"t{i}" for i in range(5)]
    assert await _balance(client, key, "user:a") == 10
    assert await _balance(client, key, "user:hot") == 90

    again = await client.post("/internal/v1/transfers/batch", json=body,
                              headers={"X-API-Key": key, "Idempotency-Key": "b1"})
    assert again.content == r.content
    assert again.headers["idempotent-replayed"] == "true"
    assert await _balance(client, key, "user:hot") == 90


async def test_atomic_batch_posts_nothing_when_one_is_refused(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key()
    await _fund(client, key, "a", 100)
    body = {"atomic": True,
            "transfers": [_transfer("user:a", "user:hot", 30, f"t{i}") for i in range(5)]}
    r = await client.post("/internal/v1/transfers/batch", json=body,
                          headers={"X-API-Key": key, "Idempotency-Key": "b2"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["posted"] == 0 and out["rejected"] == 5
    codes = [x["code"] for x in out["results"]]
    assert codes[3] == "insufficient_funds"
    assert codes[:3] + codes[4:] == ["batch_atomic_failed"] * 4
    assert await _balance(client, key, "user:a") == 100
    assert await _balance(client, key, "user:hot") == 0

    ok = {"atomic": True,
          "transfers": [_transfer("user:a", "user:hot", 30, f"t{i}") for i in range(3)]}
    r = await client.post("/internal/v1/transfers/batch", json=ok,
                          headers={"X-API-Key": key, "Idempotency-Key": "b3"})
    assert r.json()["posted"] == 3
    assert await _balance(client, key, "user:hot") == 90


async def test_batch_limits_and_scopes(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    too_many = {"transfers": [_transfer("world", "user:x", 1, f"t{i}") for i in range(1001)]}
    r = await client.post("/internal/v1/transfers/batch", json=too_many,
                          headers={"X-API-Key": key, "Idempotency-Key": "b4"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    empty = await client.post("/internal/v1/transfers/batch", json={"transfers": []},
                              headers={"X-API-Key": key, "Idempotency-Key": "b5"})
    assert empty.status_code == 422
    reader = await make_key("reader", "wallet:read")
    r = await client.post("/internal/v1/transfers/batch",
                          json={"transfers": [_transfer("world", "user:x", 1, "t")]},
                          headers={"X-API-Key": reader, "Idempotency-Key": "b6"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert await _balance(client, key, "user:x") == 0


async def test_concurrent_requests_share_commits_without_changing_results(
    client: httpx.AsyncClient, make_key: MakeKey, app: Any
) -> None:
    """40 payers, half able to pay, all paying one hot account at once."""
    key = await make_key()
    for i in range(40):
        await _fund(client, key, f"p{i}", 50 if i % 2 == 0 else 10)
    ledger = app.state.coinpurse.ledger
    batches_before, jobs_before = ledger.batches_committed, ledger.jobs_committed

    async def pay(i: int) -> httpx.Response:
        return await client.post("/internal/v1/transfers", json=_transfer(
            f"user:p{i}", "user:hot", 30, f"pay{i}"),
            headers={"X-API-Key": key, "Idempotency-Key": f"pay-{i}"})

    answers = await asyncio.gather(*(pay(i) for i in range(40)))
    statuses = [r.status_code for r in answers]
    assert statuses == [201 if i % 2 == 0 else 422 for i in range(40)]
    assert all(r.json()["code"] == "insufficient_funds" for r in answers[1::2])
    assert await _balance(client, key, "user:hot") == 20 * 30
    jobs = ledger.jobs_committed - jobs_before
    batches = ledger.batches_committed - batches_before
    assert jobs == 40
    assert batches < jobs, "concurrent requests should have shared commits"


async def test_new_accounts_created_by_concurrent_batches(
    settings: Settings, make_key: MakeKey
) -> None:
    """Batches racing to create the same new accounts (several committers on PostgreSQL,
    one request per batch): each batch must see an account another batch created, but only
    once that batch has committed."""
    app = create_app(settings.model_copy(update={"batch_max": 1, "committers": 4}))
    async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await _race_new_accounts(client, await make_key())


async def _race_new_accounts(client: httpx.AsyncClient, key: str) -> None:
    for round_ in range(15):
        answers = await asyncio.gather(*(
            client.post("/internal/v1/transfers", json=_transfer(
                "world", f"user:new{round_}", 1, f"r{round_}-{i}"),
                headers={"X-API-Key": key, "Idempotency-Key": f"n-{round_}-{i}"})
            for i in range(12)))
        assert [r.status_code for r in answers] == [201] * 12, answers[0].text
        assert await _balance(client, key, f"user:new{round_}") == 12
