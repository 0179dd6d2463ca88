"""Subscriptions over graphql-transport-ws and over SSE (graphql-sse) on a real ``coinpurse
serve`` (two worker processes on PostgreSQL): a credit made through REST, by whichever
process, reaches the subscriber; nobody else's does."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import MakeKey, Server, user_token

SUBSCRIBE = "subscription { balanceUpdated { address currency balance held available " \
            "transactionId eventId } }"


async def _next(ws: ClientConnection, timeout_s: float) -> dict[str, Any] | None:
    try:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    except TimeoutError:
        return None
    return message


async def _open(url: str, payload: dict[str, Any], query: str = SUBSCRIBE
                ) -> ClientConnection:
    ws = await websockets.connect(url, subprotocols=[websockets.Subprotocol(
        "graphql-transport-ws")])
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    ack = await _next(ws, 30)
    assert ack == {"type": "connection_ack"}, ack
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    return ws


async def test_a_rest_credit_reaches_the_subscriber(serve: Callable[..., Server],
                                                    make_key: MakeKey, db_url: str) -> None:
    # Two processes on PostgreSQL (a credit may land in the other one); SQLite has one.
    workers = 2 if db_url.startswith("postgresql") else 1
    server = serve(workers=workers, COINPURSE_RATE_LIMIT_USER="off", COINPURSE_RATE_LIMIT_IP="off")
    ws_url = server.base_url.replace("http://", "ws://") + "/graphql"
    key = await make_key()

    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        async def credit(user_id: str, amount: int) -> dict[str, Any]:
            r = await http.post("/internal/v1/wallet/credit", json={
                "user_id": user_id, "currency": "points", "amount": amount,
                "description": "win", "reference_id": "r"},
                headers={"X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex})
            assert r.status_code == 201, r.text
            found: dict[str, Any] = r.json()
            return found

        ws = await _open(ws_url, {"Authorization": f"Bearer {user_token('alice')}"})
        try:
            # The subscription starts at the log's head when it is set up: credit until
            # the first change arrives, then every later credit must arrive, in order.
            sent: dict[str, int] = {}
            first = None
            for _ in range(30):
                await credit("bob", 5)  # not alice's: never shown to her
                tx = await credit("alice", 1)
                sent[tx["id"]] = tx["balance_after"]
                first = await _next(ws, 2)
                if first is not None:
                    break
            assert first is not None and first["type"] == "next", first
            change = first["payload"]["data"]["balanceUpdated"]
            assert change["address"] == "user:alice" and change["currency"] == "points"
            assert sent[change["transactionId"]] == change["balance"]
            # Catch up with what was sent before the first change arrived.
            while change["transactionId"] != list(sent)[-1]:
                message = await _next(ws, 10)
                assert message is not None and message["type"] == "next", message
                change = message["payload"]["data"]["balanceUpdated"]
                assert change["address"] == "user:alice"
                assert sent[change["transactionId"]] == change["balance"]
            for amount in (10, 20):
                await credit("bob", 5)
                tx = await credit("alice", amount)
                message = await _next(ws, 15)
                assert message is not None and message["type"] == "next", message
                assert message["payload"]["data"]["balanceUpdated"] == {
                    "address": "user:alice", "currency": "points",
                    "balance": tx["balance_after"], "held": 0,
                    "available": tx["balance_after"], "transactionId": tx["id"],
                    "eventId": message["payload"]["data"]["balanceUpdated"]["eventId"]}
        finally:
            await ws.close()

        # Bob's notifications: a gift from alice makes one, and it arrives live.
        ws = await _open(ws_url, {"token": user_token("bob")},
                         "subscription { notificationAdded { id kind title data } }")
        try:
            note = None
            for i in range(30):
                r = await http.post("/api/v1/gifts", json={
                    "to_user_id": "bob", "amount": 1, "currency": "points"},
                    headers={"Authorization": f"Bearer {user_token('alice')}",
                             "Idempotency-Key": f"gift-{i}"})
                assert r.status_code == 201, r.text
                note = await _next(ws, 3)
                if note is not None:
                    break
            assert note is not None and note["type"] == "next", note
            added = note["payload"]["data"]["notificationAdded"]
            assert added["kind"] == "gift.sent" and added["data"]["to_user_id"] == "bob"
        finally:
            await ws.close()

        # No token: the subscription is refused with REST's code.
        ws = await _open(ws_url, {})
        try:
            refused = await _next(ws, 15)
            assert refused is not None and refused["type"] == "next", refused
            assert refused["payload"]["data"] is None
            assert refused["payload"]["errors"][0]["extensions"] == {"code": "unauthorized",
                                                                     "status": 401}
            assert await _next(ws, 15) == {"id": "1", "type": "complete"}
        finally:
            await ws.close()



async def _sse_events(lines: Any, timeout_s: float) -> tuple[str, Any] | None:
    """The next SSE event (its name and JSON data), skipping comments (heartbeats)."""
    name, data = "message", None

    async def read() -> tuple[str, Any] | None:
        nonlocal name, data
        async for line in lines:
            if line.startswith(":"):
                continue
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:].strip() or "null")
            elif line == "" and (data is not None or name == "complete"):
                return name, data
        return None

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        return None


async def test_subscriptions_over_sse(serve: Callable[..., Server], make_key: MakeKey,
                                      db_url: str) -> None:
    workers = 2 if db_url.startswith("postgresql") else 1
    server = serve(workers=workers, COINPURSE_RATE_LIMIT_USER="off", COINPURSE_RATE_LIMIT_IP="off")
    key = await make_key()
    sse = {"Accept": "text/event-stream"}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        async with http.stream("POST", "/graphql", json={"query": SUBSCRIBE}, headers={
                **sse, "Authorization": f"Bearer {user_token('carol')}"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            event = None
            for _ in range(30):  # the subscription starts at the log's head: credit until
                r = await http.post("/internal/v1/wallet/credit", json={  # one arrives
                    "user_id": "carol", "currency": "points", "amount": 7,
                    "description": "win", "reference_id": "r"},
                    headers={"X-API-Key": key, "Idempotency-Key": uuid.uuid4().hex})
                assert r.status_code == 201, r.text
                event = await _sse_events(lines, 2)
                if event is not None:
                    break
            assert event is not None and event[0] == "next", event
            change = event[1]["data"]["balanceUpdated"]
            assert change["address"] == "user:carol" and change["currency"] == "points"
            assert change["balance"] % 7 == 0 and change["balance"] > 0

        # No token: the one event is the refusal with REST's code, then the stream completes.
        async with http.stream("POST", "/graphql", json={"query": SUBSCRIBE},
                               headers=sse) as stream:
            lines = stream.aiter_lines()
            refused = await _sse_events(lines, 15)
            assert refused is not None and refused[0] == "next", refused
            assert refused[1]["errors"][0]["extensions"] == {"code": "unauthorized",
                                                             "status": 401}
            done = await _sse_events(lines, 15)
            assert done is not None and done[0] == "complete", done
