"""Shop orders agree with the ledger (issue 15: "bonus and order rows agree with the ledger
where those exist"), on SQLite and PostgreSQL: orders bought and refunded through the API
pass; each kind of disagreement made with raw SQL is found with the order or the
transaction named."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from coinpurse.config import Settings
from tests.conftest import MakeKey
from tests.reconcile.conftest import found, query, run, seal, tamper
from tests.shop.conftest import as_merchant, as_user, buy, fund, product


@pytest.fixture
async def sales(client: httpx.AsyncClient, make_key: MakeKey, settings: Settings
                ) -> dict[str, Any]:
    """Two orders of 2 x 100 points at a 5% fee: one kept, one refunded 50 then the rest."""
    key = await make_key("games", "*")
    await fund(client, key, "buyer", 1000)
    item = await product(client, "m1", price=100)
    kept = await buy(client, "buyer", item["id"], 2)
    returned = await buy(client, "buyer", item["id"], 2)
    assert kept.status_code == returned.status_code == 201, kept.text
    order = returned.json()["id"]
    for body in ({"amount": 50}, {}):
        r = await client.post(f"/api/v1/orders/{order}/refund", headers=as_merchant("m1"),
                              json={"reason": "test", **body})
        assert r.status_code in (200, 201), r.text
    r = await client.get(f"/api/v1/orders/{order}", headers=as_user("buyer"))
    assert r.json()["status"] == "refunded", r.text
    await seal(settings)
    return {"kept": kept.json()["id"], "refunded": order}


async def _order(url: str, order_id: str) -> Any:
    (row,) = await query(url, "SELECT * FROM orders WHERE id = :o", {"o": order_id})
    return row


async def test_orders_bought_and_refunded_agree_with_the_ledger(
        sales: dict[str, Any], settings: Settings) -> None:
    detail = await run(settings, "ledger", "full")
    assert detail.run.status == "passed", detail.discrepancies
    assert detail.run.counts["shop_orders"] == 2
    again = await run(settings)  # incremental: nothing changed
    assert again.run.status == "passed", again.discrepancies


async def test_an_order_whose_amount_was_edited_is_found(
        sales: dict[str, Any], settings: Settings) -> None:
    url = settings.database_url
    await run(settings, "ledger", "full")
    await tamper(url, ("UPDATE orders SET amount = 150, updated_at = CURRENT_TIMESTAMP "
                       "WHERE id = :o", {"o": sales["kept"]}))
    detail = await run(settings)  # the incremental run sees the changed order
    (wrong,) = found(detail, "shop_order_amount_mismatch")
    assert wrong.subject == sales["kept"] and wrong.expected == [150, 150 - 10]
    assert wrong.actual == [200, 190]


async def test_an_order_without_its_purchase_and_a_purchase_without_its_order(
        sales: dict[str, Any], settings: Settings) -> None:
    url = settings.database_url
    order = await _order(url, sales["kept"])
    (funding,) = await query(url, "SELECT id, kind FROM transactions WHERE reference_id = "
                                  "'fund'")
    # Another transaction (the buyer's funding credit): the foreign key holds on SQLite.
    await tamper(url, ("UPDATE orders SET transaction_id = :t WHERE id = :o",
                       {"t": funding.id, "o": sales["kept"]}))
    detail = await run(settings, "ledger", "full")
    (missing,) = found(detail, "shop_order_without_purchase")
    assert missing.subject == sales["kept"] and missing.actual == funding.id
    assert f"a {funding.kind} of fund" in missing.detail
    (orphan,) = found(detail, "purchase_without_order")
    assert orphan.subject == order.transaction_id


async def test_refunds_that_disagree_with_the_order_are_found(
        sales: dict[str, Any], settings: Settings) -> None:
    url = settings.database_url
    refunds = await query(url, "SELECT id, transaction_id FROM order_refunds "
                               "WHERE order_id = :o ORDER BY id", {"o": sales["refunded"]})
    assert len(refunds) == 2
    await tamper(url, ("DELETE FROM order_refunds WHERE id = :r", {"r": refunds[1].id}))
    detail = await run(settings, "ledger", "full")
    wrong = found(detail, "shop_refund_mismatch")
    assert [d.subject for d in wrong] == [sales["refunded"]]
    assert wrong[0].expected == [50, 2, "partially_refunded"]
    assert wrong[0].actual == [200, 10, "refunded"]
    (orphan,) = found(detail, "purchase_without_order")  # the refund's transaction
    assert orphan.subject == refunds[1].transaction_id
