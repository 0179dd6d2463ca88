"""A full reconciliation (issue 15) finds nothing wrong after bonus money moved every way:
grants, a purchase paid partly with bonus and its refund, a conversion, a forfeit."""

from __future__ import annotations

from typing import Any

import httpx

from coinpurse.config import Settings
from tests.bonuses.conftest import (
    ADMIN,
    activity,
    as_user,
    check,
    fund,
    granted,
    promotion,
)
from tests.conftest import MakeKey
from tests.reconcile.conftest import run


async def test_a_full_reconciliation_passes_with_bonus_money(
        client: httpx.AsyncClient, app: Any, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key()
    promo = await promotion(client, amount=100, wagering_multiplier=1, per_user_limit=None,
                            max_conversion=60)
    await fund(client, key, "rb", 30)
    spent = await granted(client, key, "rb", promo["code"])
    item = await client.post("/api/v1/products", headers=as_user("rs", role="merchant"),
                             json={"name": "Bow", "price": 80, "currency": "coins",
                                   "stock": 3})
    order = await client.post("/api/v1/orders", headers=as_user("rb"),
                              json={"product_id": item.json()["id"]})
    assert (order.json()["from_cash"], order.json()["from_bonus"]) == (30, 50)
    refund = await client.post(f"/api/v1/orders/{order.json()['id']}/refund",
                               headers=as_user("rs", role="merchant"),
                               json={"amount": 40, "reason": "half"})
    assert refund.status_code == 201, refund.text
    assert (await activity(client, key, "rb", 100)).json()["conversions"][0]["converted"] == 60
    other = await granted(client, key, "rb", promo["code"])
    forfeit = await client.post(f"/admin/v1/bonuses/{other['id']}/forfeit", headers=ADMIN,
                                json={"reason": "test"})
    assert forfeit.status_code == 200 and spent["id"] != other["id"]
    await check(settings.database_url)
    detail = await run(settings, "ledger", "full")
    assert detail.run.status == "passed", detail.discrepancies
