"""``gift.sent`` commits with the gift, once per gift (a replay writes nothing), and
notifies the receiver."""

from __future__ import annotations

import httpx

from tests.conftest import MakeKey, auth, user_token
from tests.events.conftest import credit, eventually


async def test_a_gift_writes_gift_sent_and_notifies_the_receiver(
        client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await credit(client, key, "giver", 100, currency="diamonds")
    giver = {**auth(user_token("giver")), "Idempotency-Key": "g-1"}
    body = {"to_user_id": "taker", "amount": 15, "currency": "diamonds", "message": "gg"}
    sent = await client.post("/api/v1/gifts", headers=giver, json=body)
    assert sent.status_code == 201, sent.text
    again = await client.post("/api/v1/gifts", headers=giver, json=body)
    assert again.headers.get("Idempotent-Replayed") == "true"
    found = (await client.get("/internal/v1/events", headers={"X-API-Key": key},
                              params={"types": "gift.*"})).json()["data"]
    [event] = found
    gift = sent.json()
    assert event["type"] == "gift.sent"
    assert event["data"] == {k: v for k, v in gift.items() if k != "giver_wallet"}
    assert (event["data"]["receiver_amount"], event["data"]["platform_fee"]) == (12, 3)

    taker = auth(user_token("taker"))

    async def notified() -> list[dict[str, object]]:
        page = (await client.get("/api/v1/notifications", headers=taker)).json()
        data: list[dict[str, object]] = page["data"]
        return data

    [note] = await eventually(notified, what="the receiver's notification")
    assert note["kind"] == "gift.sent" and note["title"] == "You received a gift"
    assert note["body"] == "giver sent you 15 diamonds: 12 diamonds for you."
    assert (await client.get("/api/v1/notifications",
                             headers=auth(user_token("giver")))).json()["data"] == []
