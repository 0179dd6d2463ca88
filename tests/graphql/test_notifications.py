"""Notifications over GraphQL: the caller's feed (made by the events domain's consumer),
marking them read, and nobody else's."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.conftest import MakeKey
from tests.graphql.conftest import Gql, codes, fund, user

FEED = """query($unread: Boolean!) { me { notifications(unread: $unread) {
    unreadCount edges { cursor node { id kind title body data eventId readAt } }
    pageInfo { hasNextPage endCursor } } } }"""
MARK = """mutation($ids: [String!]) { markNotificationsRead(ids: $ids) {
    unreadCount notifications { id readAt } } }"""
GIFT = """mutation($key: String!) { sendGift(input: {toUserId: "bob", amount: 10,
    currency: "points"}, idempotencyKey: $key) { gift { id } } }"""


async def _feed(gql: Gql, who: str, unread: bool = False) -> dict[str, Any]:
    answer = await gql(FEED, {"unread": unread}, user(who))
    assert "errors" not in answer, answer
    found: dict[str, Any] = answer["data"]["me"]["notifications"]
    return found


async def test_the_feed_and_marking_read(client: httpx.AsyncClient, gql: Gql,
                                         make_key: MakeKey) -> None:
    await fund(client, await make_key(), "alice", 100)
    for key in ("g1", "g2"):
        assert "errors" not in await gql(GIFT, {"key": key}, user("alice"))
    deadline = time.monotonic() + 30
    while len((feed := await _feed(gql, "bob"))["edges"]) < 2:
        assert time.monotonic() < deadline, feed
        await asyncio.sleep(0.1)
    rest = (await client.get("/api/v1/notifications", headers=user("bob"))).json()
    assert [e["node"]["id"] for e in feed["edges"]] == [n["id"] for n in rest["data"]]
    assert feed["unreadCount"] == rest["unread_count"] == 2
    assert {e["node"]["kind"] for e in feed["edges"]} == {"gift.sent"}
    assert all(e["node"]["readAt"] is None for e in feed["edges"])
    newest = feed["edges"][0]["node"]["id"]

    # Nobody else sees them, or can mark them.
    assert (await _feed(gql, "alice"))["edges"] == []
    assert codes(await gql(MARK, {"ids": [newest]}, user("carol"))) == ["not_found"]
    assert (await _feed(gql, "bob"))["unreadCount"] == 2

    one = (await gql(MARK, {"ids": [newest]}, user("bob")))["data"]["markNotificationsRead"]
    assert one["unreadCount"] == 1 and one["notifications"][0]["id"] == newest
    assert one["notifications"][0]["readAt"] is not None
    again = (await gql(MARK, {"ids": [newest]}, user("bob")))["data"]["markNotificationsRead"]
    assert again["unreadCount"] == 1  # marking a read one again changes nothing
    assert [e["node"]["id"] for e in (await _feed(gql, "bob", unread=True))["edges"]] == [
        feed["edges"][1]["node"]["id"]]
    every = (await gql(MARK, {"ids": None}, user("bob")))["data"]["markNotificationsRead"]
    assert every == {"unreadCount": 0, "notifications": []}
    assert codes(await gql(MARK, {"ids": ["../x"]}, user("bob"))) == ["validation_error"]
    assert codes(await gql(MARK, {"ids": None})) == ["unauthorized"]
