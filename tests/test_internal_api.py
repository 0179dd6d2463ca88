"""The internal service API over HTTP: writes, reads, scopes, authentication, idempotency."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from coinpurse.auth import keys
from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from tests.conftest import MakeKey

CREDIT = "/internal/v1/wallet/credit"
DEBIT = "/internal/v1/wallet/debit"
TRANSFERS = "/internal/v1/transfers"
PROBLEM = "application/problem+json"

_idem = itertools.count(1)


def new_idem() -> str:
    return f"idem-{next(_idem)}"


def change_body(user_id: str = "u1", amount: int = 100, currency: str = "points",
                **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id, "currency": currency, "amount": amount,
                            "description": "Test movement", "reference_id": "ref-1"}
    body.update(extra)
    return body


def headers(key: str, idem: str | None = None, **extra: str) -> dict[str, str]:
    h = {"X-API-Key": key, "Idempotency-Key": idem or new_idem()}
    h.update(extra)
    return h


async def post(client: httpx.AsyncClient, path: str, key: str, body: Any,
               idem: str | None = None, **extra: str) -> httpx.Response:
    return await client.post(path, headers=headers(key, idem, **extra), json=body)


async def credit(client: httpx.AsyncClient, key: str, user_id: str = "u1", amount: int = 100,
                 currency: str = "points", idem: str | None = None,
                 **extra: Any) -> httpx.Response:
    return await post(client, CREDIT, key, change_body(user_id, amount, currency, **extra), idem)


async def debit(client: httpx.AsyncClient, key: str, user_id: str = "u1", amount: int = 100,
                currency: str = "points", idem: str | None = None,
                **extra: Any) -> httpx.Response:
    return await post(client, DEBIT, key, change_body(user_id, amount, currency, **extra), idem)


async def balance(client: httpx.AsyncClient, key: str, user_id: str = "u1",
                  currency: str = "points") -> int:
    r = await client.get(f"/internal/v1/wallet/balance/{user_id}", headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    value: int = r.json()["wallets"][currency]["balance"]
    return value


async def account(client: httpx.AsyncClient, key: str, address: str,
                  currency: str = "points") -> int:
    r = await client.get(f"/internal/v1/accounts/{address}", headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    value: int = r.json()["balances"][currency]["balance"]
    return value


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def transfer_body(*postings: tuple[str, str, int, str], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "postings": [{"source": s, "destination": d, "amount": a, "currency": c}
                     for s, d, a, c in postings],
        "description": "A transfer", "reference_id": "tr-1",
    }
    body.update(extra)
    return body


# --- credit and debit ----------------------------------------------------------------------


async def test_credit_response_and_balances(client: httpx.AsyncClient,
                                            make_key: MakeKey) -> None:
    key = await make_key()
    r = await credit(client, key, "u1", 250, idem="c-1", metadata={"campaign": "spring"},
                     internal_notes="ops only")
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/json"
    assert "Idempotent-Replayed" not in r.headers
    body = r.json()
    assert body["user_id"] == "u1"
    assert body["currency"] == "points"
    assert body["amount"] == 250
    assert body["balance_after"] == 250
    assert body["wallet"] == {"balance": 250, "held": 0, "available": 250}
    assert body["kind"] == "credit"
    assert body["service"] == "games"
    assert body["initiator"] == "service:games"
    assert body["internal_notes"] == "ops only"
    assert body["metadata"] == {"campaign": "spring"}
    assert body["idempotency_key"] == "c-1"
    assert body["postings"] == [{"source": "service:games", "destination": "user:u1",
                                 "amount": 250, "currency": "points"}]
    assert {(b["address"], b["balance"]) for b in body["balances"]} == {
        ("service:games", -250), ("user:u1", 250)}
    assert body["created_at"].endswith("Z")
    assert await balance(client, key, "u1") == 250
    assert await account(client, key, "service:games") == -250


async def test_debit_moves_money_back(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    assert (await credit(client, key, "u1", 100)).status_code == 201
    r = await debit(client, key, "u1", 30)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "debit"
    assert body["amount"] == 30
    assert body["balance_after"] == 70
    assert body["postings"] == [{"source": "user:u1", "destination": "service:games",
                                 "amount": 30, "currency": "points"}]
    assert await balance(client, key, "u1") == 70
    assert await account(client, key, "service:games") == -70


async def test_debit_insufficient_funds_changes_nothing(client: httpx.AsyncClient,
                                                        make_key: MakeKey) -> None:
    key = await make_key()
    assert (await credit(client, key, "u1", 100)).status_code == 201
    r = await debit(client, key, "u1", 101)
    body = assert_problem(r, 422, "insufficient_funds")
    assert body["posting_index"] == 0
    assert await balance(client, key, "u1") == 100
    assert await account(client, key, "service:games") == -100
    # The whole balance can go.
    assert (await debit(client, key, "u1", 100)).status_code == 201
    assert await balance(client, key, "u1") == 0


async def test_currencies_are_separate_wallets(client: httpx.AsyncClient,
                                               make_key: MakeKey) -> None:
    key = await make_key()
    assert (await credit(client, key, "u1", 100, "points")).status_code == 201
    assert_problem(await debit(client, key, "u1", 1, "usdt"), 422, "insufficient_funds")
    assert (await credit(client, key, "u1", 5, "usdt")).status_code == 201
    assert await balance(client, key, "u1", "usdt") == 5
    assert await balance(client, key, "u1", "points") == 100


# --- transfers -----------------------------------------------------------------------------


async def test_transfer_multi_posting(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    assert (await credit(client, key, "u1", 100)).status_code == 201
    body = transfer_body(("user:u1", "user:u2", 90, "points"),
                         ("user:u1", "agency:7", 10, "points"),
                         kind="gift", internal_notes="n", metadata={"room": 5})
    r = await post(client, TRANSFERS, key, body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["kind"] == "gift"
    assert out["service"] == "games"
    assert out["internal_notes"] == "n"
    assert out["metadata"] == {"room": 5}
    assert len(out["postings"]) == 2
    assert {(b["address"], b["balance"]) for b in out["balances"]} == {
        ("user:u1", 0), ("user:u2", 90), ("agency:7", 10)}
    assert await balance(client, key, "u1") == 0
    assert await balance(client, key, "u2") == 90
    assert await account(client, key, "agency:7") == 10


async def test_transfer_all_or_nothing(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    assert (await credit(client, key, "u1", 100)).status_code == 201
    body = transfer_body(("user:u1", "user:u2", 60, "points"),
                         ("user:u1", "user:u3", 60, "points"))
    r = await post(client, TRANSFERS, key, body)
    problem = assert_problem(r, 422, "insufficient_funds")
    assert problem["posting_index"] == 1
    assert await balance(client, key, "u1") == 100
    assert await balance(client, key, "u2") == 0
    assert await balance(client, key, "u3") == 0
    r = await client.get("/internal/v1/wallet/transactions/u2", headers={"X-API-Key": key})
    assert r.json()["data"] == []


async def test_transfer_through_intermediate_and_overdraft_accounts(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key()
    body = transfer_body(("world", "user:u1", 500, "usdt"),
                         ("user:u1", "provider:bank", 200, "usdt"),
                         ("provider:bank", "user:u2", 1000, "usdt"))
    r = await post(client, TRANSFERS, key, body)
    assert r.status_code == 201, r.text
    assert await account(client, key, "world", "usdt") == -500
    assert await account(client, key, "provider:bank", "usdt") == -800
    assert await balance(client, key, "u1", "usdt") == 300
    assert await balance(client, key, "u2", "usdt") == 1000


async def test_transfer_unknown_currency(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    r = await post(client, TRANSFERS, key,
                   transfer_body(("world", "user:u1", 5, "gold")))
    assert_problem(r, 422, "unknown_currency")


# --- reads ---------------------------------------------------------------------------------


async def test_balance_lists_every_configured_currency(client: httpx.AsyncClient,
                                                       make_key: MakeKey) -> None:
    key = await make_key()
    r = await client.get("/internal/v1/wallet/balance/nobody", headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    zero = {"balance": 0, "held": 0, "available": 0, "bonus": 0}
    assert r.json() == {"user_id": "nobody",
                        "wallets": {"points": zero, "usdt": zero, "diamonds": zero}}
    assert (await credit(client, key, "u1", 7, "diamonds")).status_code == 201
    r = await client.get("/internal/v1/wallet/balance/u1", headers={"X-API-Key": key})
    assert r.json()["wallets"] == {"points": zero, "usdt": zero,
                                   "diamonds": {"balance": 7, "held": 0, "available": 7,
                                                "bonus": 0}}


async def test_balance_bad_user_id(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    r = await client.get("/internal/v1/wallet/balance/a:b", headers={"X-API-Key": key})
    assert_problem(r, 422, "validation_error")


async def test_account_of_service_goes_negative(client: httpx.AsyncClient,
                                                make_key: MakeKey) -> None:
    key = await make_key()
    r = await client.get("/internal/v1/accounts/service:games", headers={"X-API-Key": key})
    assert r.status_code == 200
    assert r.json()["address"] == "service:games"
    assert set(r.json()["balances"]) == {"points", "usdt", "diamonds"}
    assert (await credit(client, key, "u1", 40)).status_code == 201
    r = await client.get("/internal/v1/accounts/service:games", headers={"X-API-Key": key})
    assert r.json()["balances"]["points"] == {"balance": -40, "held": 0, "available": -40}
    assert r.json()["balances"]["usdt"]["balance"] == 0


async def test_account_bad_address(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    r = await client.get("/internal/v1/accounts/Bad!Address", headers={"X-API-Key": key})
    assert_problem(r, 422, "validation_error")


async def test_get_transaction(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    r = await credit(client, key, "u1", 100, idem="tx-read", internal_notes="secret note",
                     metadata={"a": [1, 2]})
    tx_id = r.json()["id"]
    r = await client.get(f"/internal/v1/transactions/{tx_id}", headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == tx_id
    assert body["kind"] == "credit"
    assert body["internal_notes"] == "secret note"
    assert body["service"] == "games"
    assert body["metadata"] == {"a": [1, 2]}
    assert body["idempotency_key"] == "tx-read"
    assert body["postings"] == [{"source": "service:games", "destination": "user:u1",
                                 "amount": 100, "currency": "points"}]
    assert [(e["address"], e["amount"], e["balance_after"]) for e in body["entries"]] == [
        ("service:games", -100, -100), ("user:u1", 100, 100)]
    assert sum(e["amount"] for e in body["entries"]) == 0


async def test_get_transaction_not_found(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    r = await client.get("/internal/v1/transactions/does-not-exist",
                         headers={"X-API-Key": key})
    assert_problem(r, 404, "not_found")
    r = await client.get("/internal/v1/transactions/" + "x" * 65, headers={"X-API-Key": key})
    assert_problem(r, 422, "validation_error")


async def test_audit_history_includes_service_and_notes(client: httpx.AsyncClient,
                                                        make_key: MakeKey) -> None:
    key = await make_key()
    assert (await credit(client, key, "u1", 100, internal_notes="why",
                         metadata={"m": 1})).status_code == 201
    assert (await debit(client, key, "u1", 40, description="Spent")).status_code == 201
    r = await client.get("/internal/v1/wallet/transactions/u1", headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["next_cursor"] is None
    newest, oldest = page["data"]
    assert newest["amount"] == -40 and newest["kind"] == "debit"
    assert newest["description"] == "Spent"
    assert newest["balance_after"] == 60
    assert newest["internal_notes"] is None
    assert oldest["amount"] == 100 and oldest["balance_after"] == 100
    assert oldest["service"] == "games"
    assert oldest["initiator"] == "service:games"
    assert oldest["internal_notes"] == "why"
    assert oldest["metadata"] == {"m": 1}


async def test_audit_history_pagination(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    for amount in range(1, 6):
        assert (await credit(client, key, "u1", amount)).status_code == 201
    assert (await credit(client, key, "other", 99)).status_code == 201
    seen: list[dict[str, Any]] = []
    sizes = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/internal/v1/wallet/transactions/u1", params=params,
                             headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        page = r.json()
        sizes.append(len(page["data"]))
        seen.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert len({e["id"] for e in seen}) == 5
    assert [e["amount"] for e in seen] == [5, 4, 3, 2, 1]
    assert [e["balance_after"] for e in seen] == [15, 10, 6, 3, 1]


async def test_audit_history_currency_filter(client: httpx.AsyncClient,
                                             make_key: MakeKey) -> None:
    key = await make_key()
    assert (await credit(client, key, "u1", 1, "points")).status_code == 201
    assert (await credit(client, key, "u1", 2, "usdt")).status_code == 201
    r = await client.get("/internal/v1/wallet/transactions/u1", params={"currency": "usdt"},
                         headers={"X-API-Key": key})
    assert [(e["currency"], e["amount"]) for e in r.json()["data"]] == [("usdt", 2)]
    r = await client.get("/internal/v1/wallet/transactions/u1", params={"currency": "gold"},
                         headers={"X-API-Key": key})
    assert_problem(r, 422, "unknown_currency")


# --- scopes --------------------------------------------------------------------------------


async def test_credit_scope_is_per_currency_and_operation(client: httpx.AsyncClient,
                                                          make_key: MakeKey) -> None:
    admin = await make_key()
    key = await make_key(scopes="wallet:credit:points")
    assert (await credit(client, key, "u1", 10, "points")).status_code == 201
    body = assert_problem(await credit(client, key, "u1", 10, "usdt"), 403, "forbidden")
    assert body["required_scope"] == "wallet:credit:usdt"
    assert_problem(await debit(client, key, "u1", 1, "points"), 403, "forbidden")
    assert_problem(await post(client, TRANSFERS, key,
                              transfer_body(("user:u1", "user:u2", 1, "points"))),
                   403, "forbidden")
    # No wallet:read either.
    r = await client.get("/internal/v1/wallet/balance/u1", headers={"X-API-Key": key})
    assert_problem(r, 403, "forbidden")
    assert await balance(client, admin, "u1", "points") == 10
    assert await balance(client, admin, "u1", "usdt") == 0


async def test_debit_wildcard_scope(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    admin = await make_key()
    key = await make_key(scopes="wallet:debit:*")
    for currency in ("points", "usdt", "diamonds"):
        assert (await credit(client, admin, "u1", 10, currency)).status_code == 201
        r = await debit(client, key, "u1", 4, currency)
        assert r.status_code == 201, r.text
        assert await balance(client, admin, "u1", currency) == 6
    assert_problem(await credit(client, key, "u1", 1, "points"), 403, "forbidden")


async def test_read_scope_needed_for_every_read(client: httpx.AsyncClient,
                                                make_key: MakeKey) -> None:
    admin = await make_key()
    tx_id = (await credit(client, admin, "u1", 5)).json()["id"]
    writer = await make_key(scopes="wallet:credit,wallet:debit,transfers:write")
    reader = await make_key(scopes="wallet:read")
    paths = ["/internal/v1/wallet/balance/u1", "/internal/v1/accounts/service:games",
             f"/internal/v1/transactions/{tx_id}", "/internal/v1/wallet/transactions/u1"]
    for path in paths:
        body = assert_problem(await client.get(path, headers={"X-API-Key": writer}),
                              403, "forbidden")
        assert body["required_scope"] == "wallet:read"
        r = await client.get(path, headers={"X-API-Key": reader})
        assert r.status_code == 200, (path, r.text)
    # A reader cannot write.
    assert_problem(await credit(client, reader, "u1", 1), 403, "forbidden")
    assert await balance(client, admin, "u1") == 5


async def test_transfers_scope(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    admin = await make_key()
    key = await make_key(scopes="transfers:write")
    points_only = await make_key(scopes="transfers:write:points")
    wallet = await make_key(scopes="wallet:credit:*,wallet:debit:*,wallet:read")
    t = transfer_body(("world", "user:u1", 5, "points"))
    assert (await post(client, TRANSFERS, key, t)).status_code == 201
    assert (await post(client, TRANSFERS, points_only, t)).status_code == 201
    mixed = transfer_body(("world", "user:u1", 5, "points"), ("world", "user:u1", 5, "usdt"))
    body = assert_problem(await post(client, TRANSFERS, points_only, mixed), 403, "forbidden")
    assert body["required_scope"] == "transfers:write:usdt"
    assert_problem(await post(client, TRANSFERS, wallet, t), 403, "forbidden")
    assert await balance(client, admin, "u1") == 10
    assert await balance(client, admin, "u1", "usdt") == 0


async def test_star_scope_allows_everything(client: httpx.AsyncClient,
                                            make_key: MakeKey) -> None:
    key = await make_key(scopes="*")
    assert (await credit(client, key, "u1", 10, "usdt")).status_code == 201
    assert (await debit(client, key, "u1", 3, "usdt")).status_code == 201
    r = await post(client, TRANSFERS, key, transfer_body(("user:u1", "user:u2", 2, "usdt")))
    assert r.status_code == 201
    assert await balance(client, key, "u1", "usdt") == 5
    assert await balance(client, key, "u2", "usdt") == 2


# --- authentication ------------------------------------------------------------------------


async def test_missing_api_key(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    await make_key()
    r = await client.post(CREDIT, headers={"Idempotency-Key": "x"}, json=change_body())
    assert_problem(r, 401, "unauthorized")
    r = await client.get("/internal/v1/wallet/balance/u1")
    assert_problem(r, 401, "unauthorized")
    r = await client.get("/internal/v1/wallet/balance/u1", headers={"X-API-Key": ""})
    assert_problem(r, 401, "unauthorized")


@pytest.mark.parametrize("bad", ["cpk_" + "A" * 43, "not-a-key", "cpk_" + "x" * 200])
async def test_wrong_api_key(client: httpx.AsyncClient, make_key: MakeKey, bad: str) -> None:
    good = await make_key()
    assert_problem(await credit(client, bad, "u1", 5), 401, "unauthorized")
    r = await client.get("/internal/v1/wallet/balance/u1", headers={"X-API-Key": bad})
    assert_problem(r, 401, "unauthorized")
    assert_problem(await credit(client, good[:-1], "u1", 5), 401, "unauthorized")
    assert await balance(client, good, "u1") == 0


async def test_revoked_key(client: httpx.AsyncClient, settings: Settings) -> None:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            doomed, secret = await keys.create_key(conn, "games", "*")
            _, other = await keys.create_key(conn, "games", "*")
        assert (await credit(client, secret, "u1", 5)).status_code == 201
        async with engine.begin() as conn:
            revoked = await keys.revoke_key(conn, doomed.id)
        assert revoked.revoked_at is not None
    finally:
        await engine.dispose()
    assert_problem(await credit(client, secret, "u1", 5), 401, "unauthorized")
    r = await client.get("/internal/v1/wallet/balance/u1", headers={"X-API-Key": secret})
    assert_problem(r, 401, "unauthorized")
    assert await balance(client, other, "u1") == 5


async def test_service_name_header_must_match(client: httpx.AsyncClient,
                                              make_key: MakeKey) -> None:
    key = await make_key(service="games")
    r = await post(client, CREDIT, key, change_body(), **{"X-Service-Name": "shop"})
    assert_problem(r, 403, "forbidden")
    r = await client.get("/internal/v1/wallet/balance/u1",
                         headers={"X-API-Key": key, "X-Service-Name": "shop"})
    assert_problem(r, 403, "forbidden")
    assert await balance(client, key, "u1") == 0
    r = await post(client, CREDIT, key, change_body(), **{"X-Service-Name": "games"})
    assert r.status_code == 201, r.text
    assert await balance(client, key, "u1") == 100


async def test_money_moves_from_the_key_service(client: httpx.AsyncClient,
                                                make_key: MakeKey) -> None:
    games = await make_key(service="games")
    shop = await make_key(service="shop")
    assert (await credit(client, shop, "u1", 30)).status_code == 201
    assert await account(client, games, "service:shop") == -30
    assert await account(client, games, "service:games") == 0


# --- idempotency ---------------------------------------------------------------------------


async def test_replay_same_key_same_body(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    first = await credit(client, key, "u1", 100, idem="same")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    second = await credit(client, key, "u1", 100, idem="same")
    assert second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.content == first.content
    assert second.json()["id"] == first.json()["id"]
    assert await balance(client, key, "u1") == 100
    r = await client.get("/internal/v1/wallet/transactions/u1", headers={"X-API-Key": key})
    assert len(r.json()["data"]) == 1


async def test_replay_ignores_json_key_order(client: httpx.AsyncClient,
                                             make_key: MakeKey) -> None:
    key = await make_key()
    body = change_body("u1", 100)
    first = await post(client, CREDIT, key, body, idem="order")
    reordered = dict(reversed(list(body.items())))
    second = await post(client, CREDIT, key, reordered, idem="order")
    assert second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.content == first.content
    assert await balance(client, key, "u1") == 100


async def test_replay_of_transfer(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    t = transfer_body(("world", "user:u1", 5, "points"))
    first = await post(client, TRANSFERS, key, t, idem="tr")
    second = await post(client, TRANSFERS, key, t, idem="tr")
    assert first.status_code == second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.content == first.content
    assert await balance(client, key, "u1") == 5


async def test_same_key_different_body(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    assert (await credit(client, key, "u1", 100, idem="k")).status_code == 201
    assert_problem(await credit(client, key, "u1", 101, idem="k"), 422,
                   "idempotency_key_reused")
    assert_problem(await credit(client, key, "u2", 100, idem="k"), 422,
                   "idempotency_key_reused")
    # Same body, other operation.
    assert_problem(await debit(client, key, "u1", 100, idem="k"), 422,
                   "idempotency_key_reused")
    assert await balance(client, key, "u1") == 100
    assert await balance(client, key, "u2") == 0


async def test_key_scope_is_per_service(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    games = await make_key(service="games")
    games2 = await make_key(service="games")
    shop = await make_key(service="shop")
    a = await credit(client, games, "u1", 10, idem="shared")
    b = await credit(client, shop, "u1", 10, idem="shared")
    assert a.status_code == b.status_code == 201
    assert "Idempotent-Replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"]
    assert await balance(client, games, "u1") == 20
    # Another key of the same service shares the scope.
    c = await credit(client, games2, "u1", 10, idem="shared")
    assert c.headers.get("Idempotent-Replayed") == "true"
    assert c.json()["id"] == a.json()["id"]
    assert await balance(client, games, "u1") == 20


async def test_refused_by_validation_is_not_stored(client: httpx.AsyncClient,
                                                   make_key: MakeKey) -> None:
    key = await make_key()
    bad_currency = await credit(client, key, "u1", 10, "gold", idem="fixme")
    assert_problem(bad_currency, 422, "unknown_currency")
    bad_amount = await credit(client, key, "u1", -10, idem="fixme")
    assert_problem(bad_amount, 422, "validation_error")
    scope_key = await make_key(scopes="wallet:credit:usdt")
    assert_problem(await credit(client, scope_key, "u1", 10, idem="fixme"), 403, "forbidden")
    fixed = await credit(client, key, "u1", 10, idem="fixme")
    assert fixed.status_code == 201, fixed.text
    assert "Idempotent-Replayed" not in fixed.headers
    assert await balance(client, key, "u1") == 10


async def test_insufficient_funds_answer_is_stored_and_replayed(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    key = await make_key()
    first = await debit(client, key, "u1", 50, idem="broke")
    assert_problem(first, 422, "insufficient_funds")
    assert "Idempotent-Replayed" not in first.headers
    assert (await credit(client, key, "u1", 100)).status_code == 201
    again = await debit(client, key, "u1", 50, idem="broke")
    assert_problem(again, 422, "insufficient_funds")
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == first.content
    assert await balance(client, key, "u1") == 100


async def test_missing_idempotency_key(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    for path, body in ((CREDIT, change_body()), (DEBIT, change_body()),
                       (TRANSFERS, transfer_body(("world", "user:u1", 1, "points")))):
        r = await client.post(path, headers={"X-API-Key": key}, json=body)
        problem = assert_problem(r, 422, "validation_error")
        assert problem["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert await balance(client, key, "u1") == 0


async def test_idempotency_key_length(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    assert_problem(await credit(client, key, "u1", 1, idem="k" * 256), 422, "validation_error")
    r = await client.post(CREDIT, headers={"X-API-Key": key, "Idempotency-Key": ""},
                          json=change_body())
    assert_problem(r, 422, "validation_error")
    assert await balance(client, key, "u1") == 0
    ok = await credit(client, key, "u1", 1, idem="k" * 255)
    assert ok.status_code == 201, ok.text
    assert ok.json()["idempotency_key"] == "k" * 255
    again = await credit(client, key, "u1", 1, idem="k" * 255)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await balance(client, key, "u1") == 1


async def test_cached_keys_are_dropped_when_revoked_elsewhere(
    client: httpx.AsyncClient, make_key: MakeKey, app: Any, db_url: str
) -> None:
    """Keys are cached; a revocation by another process must still bite at once."""
    import asyncio as _asyncio

    from coinpurse.auth import keys as keys_mod
    from coinpurse.core.db import create_engine as _engine

    secret = await make_key("games", "wallet:read")
    cache = app.state.coinpurse.key_cache
    for _ in range(50):
        if cache.active:
            break
        await _asyncio.sleep(0.05)
    assert cache.active
    h = {"X-API-Key": secret}
    assert (await client.get("/internal/v1/wallet/balance/u", headers=h)).status_code == 200
    engine = _engine(db_url, pool_size=1)
    async with engine.begin() as conn:
        listed = await keys_mod.list_keys(conn)
        await keys_mod.revoke_key(conn, listed[-1].id)
    await engine.dispose()
    status = 200
    for _ in range(50):  # the notification arrives within milliseconds
        status = (await client.get("/internal/v1/wallet/balance/u", headers=h)).status_code
        if status == 401:
            break
        await _asyncio.sleep(0.01)
    assert status == 401


async def test_account_versions_are_stored_with_each_change(
        client: httpx.AsyncClient, make_key: Any, settings: Any) -> None:
    from sqlalchemy import select

    from coinpurse.core.db import create_engine
    from coinpurse.ledger.tables import accounts

    key = await make_key()
    for n in range(3):
        r = await client.post("/internal/v1/wallet/credit", headers={
            "X-API-Key": key, "Idempotency-Key": f"v-{n}"}, json={
            "user_id": "ver", "currency": "points", "amount": 5, "description": "d",
            "reference_id": "r"})
        assert r.status_code == 201
    engine = create_engine(settings.database_url, pool_size=1)
    async with engine.connect() as conn:
        version = (await conn.execute(select(accounts.c.version).where(
            accounts.c.address == "user:ver"))).scalar_one()
    await engine.dispose()
    assert version == 3
