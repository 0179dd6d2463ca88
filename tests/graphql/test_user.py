"""Every user query and mutation, for the owner and for another user: GraphQL answers what
REST answers, and nobody sees anyone else's money."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from coinpurse.config import Settings
from coinpurse.ledger.errors import IdempotencyKeyReused
from tests.conftest import MakeKey
from tests.graphql.conftest import Gql, codes, fund, set_tier, user

ME = """
query {
  me {
    userId
    wallets { currency balance held available bonus }
    transactions(first: 50) {
      edges { cursor node { id transactionId currency amount kind description referenceId
                            balanceAfter createdAt postings { source destination amount
                            currency } } }
      pageInfo { hasNextPage endCursor }
    }
    holds { id status currency amount capturedAmount description expiresAt }
    sent: gifts(direction: SENT) { edges { node { id toUserId amount receiverAmount } } }
    received: gifts(direction: RECEIVED) { edges { node { id fromUserId amount } } }
    topups { edges { node { id status packageId amount price { amount currency } } } }
    withdrawals { edges { node { id status amount destination } } }
    kyc { tier withdrawals limits nextTier { tier } }
    orders { edges { node { id productId quantity amount status } } }
  }
}
"""

SEND_GIFT = """
mutation($input: SendGiftInput!, $key: String!) {
  sendGift(input: $input, idempotencyKey: $key) {
    replayed
    gift { id transactionId fromUserId toUserId amount receiverAmount platformFee
           giverWallet { balance available } }
  }
}
"""

TOPUP = """
mutation($key: String!) {
  createTopup(input: {packageId: "small"}, idempotencyKey: $key) {
    replayed topup { id status provider amount checkoutUrl price { amount currency } }
  }
}
"""

WITHDRAW = """
mutation($key: String!, $amount: Long!) {
  requestWithdrawal(input: {currency: "diamonds", amount: $amount,
                            destination: {type: "bank", iban: "DE89370400440532013000"}},
                    idempotencyKey: $key) {
    replayed withdrawal { id status amount destination wallet { balance held available } }
  }
}
"""

CANCEL = """
mutation($id: String!) { cancelWithdrawal(id: $id) { withdrawal { id status } } }
"""

PURCHASE = """
mutation($product: String!, $key: String!) {
  purchase(input: {productId: $product, quantity: 2}, idempotencyKey: $key) {
    replayed order { id productId quantity amount fee buyerWallet { balance } }
  }
}
"""


async def _setup(client: httpx.AsyncClient, gql: Gql, key: str,
                 settings: Settings) -> dict[str, Any]:
    """Alice: funded, a gift to Bob, a top-up, a withdrawal, a hold, a purchase."""
    await fund(client, key, "alice", 1000)
    await fund(client, key, "alice", 500, "diamonds")
    gift = await gql(SEND_GIFT, {"input": {"toUserId": "bob", "amount": 100,
                                           "currency": "points"}, "key": "g-1"},
                     user("alice"))
    assert "errors" not in gift, gift
    topup = await gql(TOPUP, {"key": "t-1"}, user("alice"))
    assert "errors" not in topup, topup
    await set_tier(settings, "alice", 1)
    withdrawal = await gql(WITHDRAW, {"key": "w-1", "amount": 200}, user("alice"))
    assert "errors" not in withdrawal, withdrawal
    r = await client.post("/internal/v1/holds", headers={
        "X-API-Key": key, "Idempotency-Key": "h-1"}, json={
        "user_id": "alice", "currency": "points", "amount": 50, "description": "Bet",
        "reference_id": "round-1"})
    assert r.status_code == 201, r.text
    hold = r.json()
    r = await client.post("/api/v1/products", headers=user("merch", role="merchant"), json={
        "name": "Sword", "price": 30, "currency": "points", "stock": 5})
    assert r.status_code == 201, r.text
    product = r.json()
    order = await gql(PURCHASE, {"product": product["id"], "key": "o-1"}, user("alice"))
    assert "errors" not in order, order
    return {"gift": gift["data"]["sendGift"], "topup": topup["data"]["createTopup"],
            "withdrawal": withdrawal["data"]["requestWithdrawal"], "hold": hold,
            "product": product, "order": order["data"]["purchase"]}


async def test_the_owner_sees_what_rest_shows(client: httpx.AsyncClient, gql: Gql,
                                              make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    made = await _setup(client, gql, key, settings)
    gift, order = made["gift"]["gift"], made["order"]["order"]
    assert gift["fromUserId"] == "alice" and gift["toUserId"] == "bob"
    assert gift["amount"] == 100 and made["gift"]["replayed"] is False
    assert order["quantity"] == 2 and order["amount"] == 60 and order["fee"] == 6

    answer = await gql(ME, headers=user("alice"))
    assert "errors" not in answer, answer
    me = answer["data"]["me"]
    assert me["userId"] == "alice"

    rest = (await client.get("/api/v1/wallet/balance", headers=user("alice"))).json()
    assert {w["currency"]: {k: w[k] for k in ("balance", "held", "available", "bonus")}
            for w in me["wallets"]} == rest["wallets"]
    assert {w["currency"]: w["balance"] for w in me["wallets"]} == {
        "points": 1000 - 100 - 60, "diamonds": 500, "coins": 0}

    history = (await client.get("/api/v1/wallet/transactions",
                                headers=user("alice"))).json()
    nodes = [e["node"] for e in me["transactions"]["edges"]]
    assert [{k: n[k] for k in ("id", "amount", "kind", "balanceAfter", "createdAt")}
            for n in nodes] == [{"id": h["id"], "amount": h["amount"], "kind": h["kind"],
                                 "balanceAfter": h["balance_after"],
                                 "createdAt": h["created_at"]} for h in history["data"]]
    assert me["transactions"]["pageInfo"] == {"hasNextPage": False, "endCursor": None}
    gift_line = next(n for n in nodes if n["kind"] == "gift")
    assert gift_line["transactionId"] == gift["transactionId"]
    assert {"source": "user:alice", "destination": "user:bob", "amount": gift["receiverAmount"],
            "currency": "points"} in gift_line["postings"]

    # The service's hold, then the withdrawal's (a withdrawal holds its amount).
    assert me["holds"][0] == {"id": made["hold"]["id"], "status": "held", "currency": "points",
                              "amount": 50, "capturedAmount": 0, "description": "Bet",
                              "expiresAt": made["hold"]["expires_at"]}
    assert [(h["currency"], h["amount"]) for h in me["holds"][1:]] == [("diamonds", 200)]
    assert [e["node"]["id"] for e in me["sent"]["edges"]] == [gift["id"]]
    assert me["received"]["edges"] == []
    topups = (await client.get("/api/v1/topups", headers=user("alice"))).json()["data"]
    assert [e["node"]["id"] for e in me["topups"]["edges"]] == [t["id"] for t in topups] \
        == [made["topup"]["topup"]["id"]]
    assert me["topups"]["edges"][0]["node"]["price"] == {"amount": 99, "currency": "usd"}
    withdrawal = made["withdrawal"]["withdrawal"]
    assert withdrawal["wallet"] == {"balance": 500, "held": 200, "available": 300}
    assert me["withdrawals"]["edges"][0]["node"] == {
        "id": withdrawal["id"], "status": "pending", "amount": 200,
        "destination": {"type": "bank", "iban": "DE89370400440532013000"}}
    kyc = (await client.get("/api/v1/kyc", headers=user("alice"))).json()
    assert me["kyc"] == {"tier": kyc["tier"], "withdrawals": kyc["withdrawals"],
                         "limits": kyc["limits"], "nextTier": kyc["next_tier"]}
    assert me["orders"]["edges"][0]["node"] == {
        "id": order["id"], "productId": made["product"]["id"], "quantity": 2, "amount": 60,
        "status": "paid"}

    bob = (await gql(ME, headers=user("bob")))["data"]["me"]
    assert [e["node"]["id"] for e in bob["received"]["edges"]] == [gift["id"]]


async def test_another_user_sees_nothing_of_alice(client: httpx.AsyncClient, gql: Gql,
                                                  make_key: MakeKey,
                                                  settings: Settings) -> None:
    key = await make_key()
    made = await _setup(client, gql, key, settings)
    answer = await gql(ME, headers=user("carol"))
    assert "errors" not in answer, answer
    me = answer["data"]["me"]
    assert me["userId"] == "carol"
    assert all(w["balance"] == 0 for w in me["wallets"])
    for field in ("transactions", "sent", "received", "topups", "withdrawals", "orders"):
        assert me[field]["edges"] == [], field
    assert me["holds"] == []
    assert me["kyc"]["tier"] == 0

    # Carol cannot cancel Alice's withdrawal: not_found, as for one that does not exist.
    withdrawal_id = made["withdrawal"]["withdrawal"]["id"]
    refused = await gql(CANCEL, {"id": withdrawal_id}, user("carol"))
    assert codes(refused) == ["not_found"] and refused["data"] is None
    # Alice's idempotency keys are hers: Carol's "g-1" is a gift of Carol's own.
    broke = await gql(SEND_GIFT, {"input": {"toUserId": "bob", "amount": 100,
                                            "currency": "points"}, "key": "g-1"},
                      user("carol"))
    assert codes(broke) == ["insufficient_funds"]
    assert broke["errors"][0]["extensions"]["status"] == 422

    # No token: nothing but unauthorized.
    anonymous = await gql(ME)
    assert codes(anonymous) == ["unauthorized"] and anonymous["data"] is None
    assert anonymous["errors"][0]["extensions"]["status"] == 401
    for mutation, variables in ((SEND_GIFT, {"input": {"toUserId": "bob", "amount": 1,
                                                       "currency": "points"}, "key": "x"}),
                                (TOPUP, {"key": "x"}), (CANCEL, {"id": withdrawal_id}),
                                (WITHDRAW, {"key": "x", "amount": 20}),
                                (PURCHASE, {"product": made["product"]["id"], "key": "x"})):
        assert codes(await gql(mutation, variables)) == ["unauthorized"]

    # The owner cancels: the hold is released.
    done = await gql(CANCEL, {"id": withdrawal_id}, user("alice"))
    assert done["data"]["cancelWithdrawal"]["withdrawal"] == {"id": withdrawal_id,
                                                              "status": "cancelled"}
    wallets = (await client.get("/api/v1/wallet/balance", headers=user("alice"))).json()
    assert wallets["wallets"]["diamonds"] == {"balance": 500, "held": 0, "available": 500,
                                              "bonus": 0}


async def test_products_are_public(client: httpx.AsyncClient, gql: Gql) -> None:
    for name in ("Shield", "Sword"):
        r = await client.post("/api/v1/products", headers=user("merch", role="merchant"),
                              json={"name": name, "price": 30, "currency": "points",
                                    "stock": 5})
        assert r.status_code == 201, r.text
    query = """query($after: String) { products(first: 1, after: $after) {
        edges { cursor node { name price inStock } } pageInfo { hasNextPage endCursor } } }"""
    first = (await gql(query))["data"]["products"]
    assert [e["node"]["name"] for e in first["edges"]] == ["Sword"]
    assert first["pageInfo"]["hasNextPage"] is True
    second = (await gql(query, {"after": first["pageInfo"]["endCursor"]}))["data"]["products"]
    assert [e["node"]["name"] for e in second["edges"]] == ["Shield"]
    rest = (await client.get("/api/v1/products", params={"limit": 1})).json()
    assert rest["next_cursor"] == first["pageInfo"]["endCursor"]
    filtered = await gql('{ products(filter: {q: "shi"}) { edges { node { name } } } }')
    assert [e["node"]["name"] for e in filtered["data"]["products"]["edges"]] == ["Shield"]
    unknown = await gql('{ products(filter: {currency: "nope"}) { edges { cursor } } }')
    assert codes(unknown) == ["unknown_currency"]


async def test_a_replayed_mutation_answers_the_same(client: httpx.AsyncClient, gql: Gql,
                                                    make_key: MakeKey) -> None:
    key = await make_key()
    await fund(client, key, "alice", 1000)
    variables = {"input": {"toUserId": "bob", "amount": 100, "currency": "points"},
                 "key": "same"}
    first = (await gql(SEND_GIFT, variables, user("alice")))["data"]["sendGift"]
    again = (await gql(SEND_GIFT, variables, user("alice")))["data"]["sendGift"]
    assert first["replayed"] is False and again["replayed"] is True
    assert again["gift"] == first["gift"]
    changed = await gql(SEND_GIFT, {**variables, "input": {**variables["input"],
                                                           "amount": 101}}, user("alice"))
    assert codes(changed) == ["idempotency_key_reused"]
    assert changed["errors"][0]["extensions"]["status"] == IdempotencyKeyReused.status == 422
    wallets = (await client.get("/api/v1/wallet/balance", headers=user("alice"))).json()
    assert wallets["wallets"]["points"]["balance"] == 900  # one gift, not two

    # The key and the request hash are REST's: a REST gift replayed over GraphQL.
    r = await client.post("/api/v1/gifts", headers={**user("alice"), "Idempotency-Key": "rest"},
                          json={"to_user_id": "bob", "amount": 50, "currency": "points"})
    assert r.status_code == 201, r.text
    replay = (await gql(SEND_GIFT, {"input": {"toUserId": "bob", "amount": 50,
                                              "currency": "points"}, "key": "rest"},
                        user("alice")))["data"]["sendGift"]
    assert replay["replayed"] is True and replay["gift"]["id"] == r.json()["id"]

    # A refusal is stored with its key and replayed as it was (REST's rule).
    poor = {"input": {"toUserId": "bob", "amount": 10_000, "currency": "points"},
            "key": "too-much"}
    assert codes(await gql(SEND_GIFT, poor, user("alice"))) == ["insufficient_funds"]
    await fund(client, key, "alice", 10_000)
    assert codes(await gql(SEND_GIFT, poor, user("alice"))) == ["insufficient_funds"]

    # Top-ups, withdrawals and purchases replay too.
    topup = (await gql(TOPUP, {"key": "t"}, user("alice")))["data"]["createTopup"]
    topup_again = (await gql(TOPUP, {"key": "t"}, user("alice")))["data"]["createTopup"]
    assert topup_again["replayed"] is True and topup_again["topup"] == topup["topup"]
    r = await client.post("/api/v1/products", headers=user("merch", role="merchant"),
                          json={"name": "Sword", "price": 30, "currency": "points",
                                "stock": 5})
    product = r.json()["id"]
    bought = (await gql(PURCHASE, {"product": product, "key": "p"}, user("alice")))
    bought_again = (await gql(PURCHASE, {"product": product, "key": "p"}, user("alice")))
    assert bought_again["data"]["purchase"]["replayed"] is True
    assert bought_again["data"]["purchase"]["order"] == bought["data"]["purchase"]["order"]
    r = await client.get(f"/api/v1/products/{product}")
    assert r.json()["stock"] == 3  # bought twice over: once

    alien = uuid.uuid4().hex
    assert codes(await gql(PURCHASE, {"product": alien, "key": "p2"},
                           user("alice"))) == ["not_found"]
