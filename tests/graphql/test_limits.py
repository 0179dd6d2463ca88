"""Caps and bad input: a document past a cap is refused at once with a clear error (never a
timeout), bad input is a validation error with REST's code, never a 500, and nothing
changes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from coinpurse.app import create_app
from coinpurse.config import Settings
from tests.conftest import MakeKey
from tests.graphql.conftest import Gql, codes, fund, user


def _reason(answer: dict[str, Any]) -> str:
    """The one reason of a refused document: nothing ran."""
    assert answer.get("data") is None, answer
    reasons = set()
    for error in answer["errors"]:
        assert error["extensions"]["code"] == "validation_error"
        assert error["extensions"]["status"] == 422
        reasons.add(error["extensions"]["reason"])
    (reason,) = reasons
    return str(reason)


async def test_depth_aliases_and_tokens_are_capped(gql: Gql) -> None:
    deep = "{ me { transactions { edges { node { postings { source } } } } } }"
    assert "errors" not in await gql(deep, headers=user("u"))  # depth 6 is fine
    fragment = """
      query { ...A }
      fragment A on Query { me { ...B } }
      fragment B on Me { transactions { ...C } }
      fragment C on WalletTransactionConnection { edges { node { postings { ...D } } } }
      fragment D on Posting { source }
    """
    assert "errors" not in await gql(fragment, headers=user("u"))
    assert "errors" not in await gql(deep, headers=user("u"))

    aliases = " ".join(f"w{i}: wallets {{ currency }}" for i in range(16))
    answer = await gql(f"{{ me {{ {aliases} }} }}", headers=user("u"))
    assert _reason(answer) == "too_many_aliases"
    fifteen = " ".join(f"w{i}: wallets {{ currency }}" for i in range(15))
    assert "errors" not in await gql(f"{{ me {{ {fifteen} }} }}", headers=user("u"))

    huge = "{ me { " + "userId " * 3000 + "} }"
    answer = await gql(huge, headers=user("u"))
    assert _reason(answer) == "too_many_tokens"


async def test_depth_cap_from_the_settings(settings: Settings) -> None:
    """The schema is built once; its caps are read from the running app's settings."""
    app = create_app(settings.model_copy(update={"graphql_depth_max": 3}))
    async with LifespanManager(app, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            gql = Gql(client)
            ok = await gql("{ me { transactions { pageInfo { hasNextPage } } } }",
                           headers=user("u"))
            assert "errors" not in ok, ok
            too_deep = "{ me { transactions { edges { node { id } } } } }"
            answer = await gql(too_deep, headers=user("u"))
            assert _reason(answer) == "query_too_deep"
            assert "exceeds maximum operation depth of 3" in answer["errors"][0]["message"]
            hidden = """query { ...A } fragment A on Query { me { ...B } }
                        fragment B on Me { transactions { edges { node { id } } } }"""
            assert _reason(await gql(hidden, headers=user("u"))) == "query_too_deep"


async def test_page_size_is_capped(gql: Gql) -> None:
    for first in (0, -1, 101):
        answer = await gql(f"{{ me {{ transactions(first: {first}) {{ edges {{ cursor }} }} }} }}",
                           headers=user("u"))
        assert codes(answer) == ["validation_error"], first
        assert answer["errors"][0]["extensions"]["errors"][0]["loc"] == ["arguments", "first"]
    ok = await gql("{ me { transactions(first: 100) { edges { cursor } } } }", headers=user("u"))
    assert "errors" not in ok


@pytest.mark.parametrize("query", [
    "{ me { transactions(after: \"not-a-cursor\") { edges { cursor } } } }",
    "{ me { transactions(after: \"" + "x" * 500 + "\") { edges { cursor } } } }",
    "{ me { topups(after: \"ZTEy\") { edges { cursor } } } }",
    "{ me { transactions(filters: {currency: \"nope\"}) { edges { cursor } } } }",
    "{ me { gifts(direction: SIDEWAYS) { edges { cursor } } } }",
    "{ me { transactions(first: \"ten\") { edges { cursor } } } }",
    "{ me { transactions(first: 99999999999) { edges { cursor } } } }",
    "{ me { nothing } }",
    "{ me { userId ",
    "",
    "query { me { userId } } query { me { userId } }",
    "mutation { sendGift(input: {toUserId: \"b\"}, idempotencyKey: \"\") { replayed } }",
    "mutation { sendGift(input: {toUserId: \"b\", amount: -5, currency: \"points\"}, "
    "idempotencyKey: \"k\") { replayed } }",
    "mutation { sendGift(input: {toUserId: \"b\", amount: 99999999999999999999, "
    "currency: \"points\"}, idempotencyKey: \"k\") { replayed } }",
    "mutation { sendGift(input: {toUserId: \"b\\u0000\", amount: 5, currency: \"points\"}, "
    "idempotencyKey: \"k\") { replayed } }",
    "mutation { sendGift(input: {toUserId: \"b\", amount: 5, currency: \"points\"}, "
    "idempotencyKey: \"k\\n\") { replayed } }",
    "mutation { requestWithdrawal(input: {currency: \"diamonds\", amount: 20, "
    "destination: \"x\"}, idempotencyKey: \"k\") { replayed } }",
    "mutation { cancelWithdrawal(id: \"../../etc\") { withdrawal { id } } }",
    "mutation { purchase(input: {productId: \"x\", quantity: 0}, idempotencyKey: \"k\") "
    "{ replayed } }",
    "mutation { createTopup(input: {packageId: \"nope\"}, idempotencyKey: \"k\") "
    "{ replayed } }",
    "mutation { createTopup(input: {provider: \"paypal\"}, idempotencyKey: \"k\") "
    "{ replayed } }",
])
async def test_bad_input_is_refused_and_changes_nothing(
        client: httpx.AsyncClient, gql: Gql, make_key: MakeKey, query: str) -> None:
    key = await make_key()
    await fund(client, key, "u", 100)
    r = await client.post("/graphql", json={"query": query}, headers=user("u"))
    if r.status_code == 422:  # not a GraphQL request at all: REST's problem
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "validation_error"
    else:
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["errors"], answer
        for error in answer["errors"]:
            assert error["extensions"]["code"] in ("validation_error", "unknown_currency"), \
                error
            assert error["extensions"]["status"] == 422
            assert "unexpected" not in error["message"]
    wallets = (await client.get("/api/v1/wallet/balance", headers=user("u"))).json()
    assert wallets["wallets"]["points"] == {"balance": 100, "held": 0, "available": 100,
                                           "bonus": 0}
    assert (await client.get("/api/v1/topups", headers=user("u"))).json()["data"] == []


async def test_get_runs_queries_not_mutations(client: httpx.AsyncClient) -> None:
    """Persisted-query friendly: a query and its variables in the URL, cacheable."""
    r = await client.get("/graphql", params={
        "query": "query($n: Int!) { me { transactions(first: $n) { edges { cursor } } } }",
        "variables": '{"n": 5}'}, headers=user("u"))
    assert r.status_code == 200 and r.json() == {"data": {"me": {"transactions": {"edges": []}}}}
    r = await client.get("/graphql", params={
        "query": 'mutation { cancelWithdrawal(id: "0") { withdrawal { id } } }'},
        headers=user("u"))
    assert r.status_code == 405  # never a state change over GET
    assert r.json()["code"] == "method_not_allowed"
    r = await client.get("/graphql", headers={**user("u"), "Accept": "text/html"})
    assert r.status_code == 404  # no GraphiQL page (it would load from a CDN)
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.post("/graphql", content=b"{not json", headers={
        **user("u"), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["reason"] == "invalid_request"


async def test_introspection_can_be_switched_off(gql: Gql, settings: Settings) -> None:
    query = "{ __schema { queryType { name } } }"
    assert (await gql(query))["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    app = create_app(settings.model_copy(update={"graphql_introspection": False}))
    async with LifespanManager(app, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answer = await Gql(client)(query)
            assert _reason(answer) == "introspection_disabled"
            typename = await Gql(client)("{ __typename me { userId } }", headers=user("u"))
            assert typename["data"] == {"__typename": "Query", "me": {"userId": "u"}}
