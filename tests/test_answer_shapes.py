"""The fields of every answer of the wallet, hold and gift APIs, pinned on both databases.

The answers are rendered from the schema models; a field that appears, vanishes or changes
its format (ids as strings, times as ``...Z``, absent rather than null) fails here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from tests.conftest import MakeKey, auth, user_token

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
BALANCE = {"balance", "held", "available"}
POSTING = {"source", "destination", "amount", "currency"}
TRANSACTION = {"id", "kind", "description", "reference_id", "metadata", "postings", "service",
               "initiator", "internal_notes", "idempotency_key", "created_at", "balances"}
HISTORY = {"id", "transaction_id", "currency", "amount", "kind", "description",
           "reference_id", "balance_after", "created_at"}
HOLD = {"id", "status", "user_id", "currency", "amount", "captured_amount", "released_amount",
        "destination", "kind", "description", "reference_id", "metadata", "service",
        "transaction_id", "created_at", "expires_at", "closed_at"}
GIFT = {"id", "transaction_id", "from_user_id", "to_user_id", "gift_type", "currency",
        "amount", "receiver_amount", "agency_id", "agency_commission", "platform_fee",
        "message", "context_id", "created_at"}


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex}


def _transaction(body: dict[str, Any], extra: frozenset[str] = frozenset()) -> None:
    assert set(body) == TRANSACTION | extra
    assert ISO_Z.match(body["created_at"]), body["created_at"]
    assert all(set(p) == POSTING for p in body["postings"])
    assert all(set(b) == BALANCE | {"address", "currency"} for b in body["balances"])


async def test_wallet_write_answers(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    credit = await client.post("/internal/v1/wallet/credit", headers=_h(key), json={
        "user_id": "u", "currency": "points", "amount": 50, "description": "fund",
        "reference_id": "r1", "internal_notes": "ops"})
    assert credit.status_code == 201, credit.text
    body = credit.json()
    _transaction(body, frozenset({"user_id", "currency", "amount", "balance_after", "wallet"}))
    assert body["wallet"] == {"balance": 50, "held": 0, "available": 50}
    assert (body["service"], body["internal_notes"]) == ("games", "ops")

    transfer = await client.post("/internal/v1/transfers", headers=_h(key), json={
        "postings": [{"source": "user:u", "destination": "user:v", "amount": 5,
                      "currency": "points"}], "description": "t", "reference_id": "r2"})
    assert transfer.status_code == 201, transfer.text
    _transaction(transfer.json())
    assert transfer.json()["internal_notes"] is None

    batch = await client.post("/internal/v1/transfers/batch", headers=_h(key), json={
        "transfers": [
            {"postings": [{"source": "user:u", "destination": "user:v", "amount": 1,
                           "currency": "points"}], "description": "ok", "reference_id": "b1"},
            {"postings": [{"source": "user:v", "destination": "user:u", "amount": 10**6,
                           "currency": "points"}], "description": "no", "reference_id": "b2"},
        ]})
    assert batch.status_code == 200, batch.text
    out = batch.json()
    assert set(out) == {"atomic", "posted", "rejected", "results"}
    posted, rejected = out["results"]
    assert set(posted) == {"index", "status", "reference_id", "id"}
    assert set(rejected) == {"index", "status", "reference_id", "code", "detail"}
    assert (rejected["code"], out["posted"], out["rejected"]) == ("insufficient_funds", 1, 1)


async def test_wallet_read_answers(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    credit = await client.post("/internal/v1/wallet/credit", headers=_h(key), json={
        "user_id": "u", "currency": "points", "amount": 50, "description": "fund",
        "reference_id": "r1", "metadata": {"campaign": "x"}})
    tx_id = credit.json()["id"]
    read = {"X-API-Key": key}

    balance = (await client.get("/internal/v1/wallet/balance/u", headers=read)).json()
    assert set(balance) == {"user_id", "wallets"}
    assert set(balance["wallets"]) == {"points", "usdt", "diamonds"}
    assert balance["wallets"]["points"] == {"balance": 50, "held": 0, "available": 50,
                                            "bonus": 0}
    mine = (await client.get("/api/v1/wallet/balance", headers=auth(user_token("u")))).json()
    assert mine == balance
    account = (await client.get("/internal/v1/accounts/service:games", headers=read)).json()
    assert set(account) == {"address", "balances"}
    assert account["balances"]["points"] == {"balance": -50, "held": 0, "available": -50}

    audit = (await client.get(f"/internal/v1/transactions/{tx_id}", headers=read)).json()
    assert set(audit) == TRANSACTION - {"balances"} | {"entries"}
    assert ISO_Z.match(audit["created_at"]) and audit["metadata"] == {"campaign": "x"}
    assert all(set(e) == {"id", "posting_index", "address", "currency", "amount",
                          "balance_after"} and isinstance(e["id"], str)
               for e in audit["entries"])

    page = (await client.get("/api/v1/wallet/transactions",
                             headers=auth(user_token("u")))).json()
    assert set(page) == {"data", "next_cursor"} and page["next_cursor"] is None
    (line,) = page["data"]
    assert set(line) == HISTORY and isinstance(line["id"], str) and ISO_Z.match(line["created_at"])
    audit_page = (await client.get("/internal/v1/wallet/transactions/u", headers=read)).json()
    (audit_line,) = audit_page["data"]
    assert set(audit_line) == HISTORY | {"service", "initiator", "internal_notes", "metadata"}
    assert audit_line["metadata"] == {"campaign": "x"}


async def test_hold_answers(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await client.post("/internal/v1/wallet/credit", headers=_h(key), json={
        "user_id": "u", "currency": "points", "amount": 50, "description": "fund",
        "reference_id": "r1"})
    placed = await client.post("/internal/v1/holds", headers=_h(key), json={
        "user_id": "u", "currency": "points", "amount": 20, "description": "call",
        "reference_id": "c1"})
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert set(hold) == HOLD | {"wallet"} and set(hold["wallet"]) == BALANCE
    assert ISO_Z.match(hold["created_at"]) and ISO_Z.match(hold["expires_at"])

    read = (await client.get(f"/internal/v1/holds/{hold['id']}",
                             headers={"X-API-Key": key})).json()
    assert set(read) == HOLD, "a read has no wallet: absent, not null"
    assert (read["closed_at"], read["transaction_id"]) == (None, None)

    captured = (await client.post(f"/internal/v1/holds/{hold['id']}/capture",
                                  headers=_h(key), json={"amount": 5})).json()
    assert set(captured) == HOLD | {"wallet"}
    assert ISO_Z.match(captured["closed_at"]) and captured["released_amount"] == 15


async def test_gift_answers(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await client.post("/internal/v1/wallet/credit", headers=_h(key), json={
        "user_id": "fan", "currency": "points", "amount": 50, "description": "fund",
        "reference_id": "r1"})
    fan = auth(user_token("fan"))
    catalog = (await client.get("/api/v1/gifts/catalog", headers=fan)).json()
    assert set(catalog) == {"data"}
    assert all(set(g) == {"gift_type", "price", "currency"} for g in catalog["data"])

    agency = await client.put("/internal/v1/users/host/agency", headers={"X-API-Key": key},
                              json={"agency_id": "7"})
    assert agency.json() == {"user_id": "host", "agency_id": "7"}
    sent = await client.post("/api/v1/gifts", headers={**fan, "Idempotency-Key": "g1"},
                             json={"to_user_id": "host", "gift_type": "rose"})
    assert sent.status_code == 201, sent.text
    gift = sent.json()
    assert set(gift) == GIFT | {"giver_wallet"} and set(gift["giver_wallet"]) == BALANCE
    assert ISO_Z.match(gift["created_at"]) and gift["agency_id"] == "7"

    page = (await client.get("/api/v1/gifts?direction=received",
                             headers=auth(user_token("host")))).json()
    assert set(page) == {"data", "next_cursor"}
    (listed,) = page["data"]
    assert set(listed) == GIFT
    assert listed == {k: v for k, v in gift.items() if k != "giver_wallet"}
