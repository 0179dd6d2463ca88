"""The services' queries: a service key with its scopes, exactly as REST checks it."""

from __future__ import annotations

import httpx

from tests.conftest import MakeKey
from tests.graphql.conftest import Gql, codes, fund, user

QUERY = """
query($user: String!, $address: String!, $tx: String!) {
  wallet(userId: $user) { userId wallets { currency balance held available } }
  account(address: $address) { address balances { currency balance } }
  transaction(id: $tx) { id kind service initiator internalNotes idempotencyKey metadata
                         postings { source destination amount currency }
                         entries { address amount balanceAfter postingIndex } }
}
"""


async def test_services_read_with_their_scope(client: httpx.AsyncClient, gql: Gql,
                                              make_key: MakeKey) -> None:
    writer = await make_key("games", "wallet:credit")
    reader = await make_key("audit", "wallet:read")
    credit = await fund(client, writer, "alice", 70)
    variables = {"user": "alice", "address": "service:games", "tx": credit["id"]}

    answer = await gql(QUERY, variables, {"X-API-Key": reader})
    assert "errors" not in answer, answer
    data = answer["data"]
    assert data["wallet"]["userId"] == "alice"
    assert {w["currency"]: w["balance"] for w in data["wallet"]["wallets"]} == {
        "points": 70, "diamonds": 0, "coins": 0}
    assert {b["currency"]: b["balance"] for b in data["account"]["balances"]}["points"] == -70
    rest = (await client.get(f"/internal/v1/transactions/{credit['id']}",
                             headers={"X-API-Key": reader})).json()
    tx = data["transaction"]
    assert tx["id"] == rest["id"] and tx["kind"] == "credit" and tx["service"] == "games"
    assert tx["idempotencyKey"] == rest["idempotency_key"]
    assert tx["postings"] == rest["postings"]
    assert [(e["address"], e["amount"], e["balanceAfter"]) for e in tx["entries"]] == [
        (e["address"], e["amount"], e["balance_after"]) for e in rest["entries"]]

    # The writer's key lacks wallet:read: forbidden, with the scope it needs (as REST).
    refused = await gql(QUERY, variables, {"X-API-Key": writer})
    assert set(codes(refused)) == {"forbidden"} and refused["data"] is None
    assert refused["errors"][0]["extensions"]["required_scope"] == "wallet:read"
    assert refused["errors"][0]["extensions"]["status"] == 403
    # No key, a revoked or made-up key, a user's token: unauthorized.
    for headers in ({}, {"X-API-Key": "cpk_" + "0" * 40}, user("alice")):
        answer = await gql(QUERY, variables, headers)
        assert set(codes(answer)) == {"unauthorized"}, headers
    # X-Service-Name must name the key's service.
    wrong = await gql(QUERY, variables, {"X-API-Key": reader, "X-Service-Name": "games"})
    assert set(codes(wrong)) == {"forbidden"}

    missing = await gql("query($tx: String!) { transaction(id: $tx) { id } }",
                        {"tx": "no-such-transaction"}, {"X-API-Key": reader})
    assert codes(missing) == ["not_found"]
    assert missing["errors"][0]["extensions"]["status"] == 404
    for bad in ("user:\u0000", "x" * 300, "UPPER:case"):
        answer = await gql("query($a: String!) { account(address: $a) { address } }",
                           {"a": bad}, {"X-API-Key": reader})
        assert codes(answer) == ["validation_error"], bad
    # A user's own query does not take a key for a user.
    assert codes(await gql("{ me { userId } }", headers={"X-API-Key": reader})) == [
        "unauthorized"]
