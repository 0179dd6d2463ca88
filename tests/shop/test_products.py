"""Products: merchants create and change their own; anybody browses the catalog, which
answers with ETags (304 while unchanged)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from coinpurse.config import Settings
from tests.conftest import MakeKey, auth, user_token
from tests.shop.conftest import ADMIN, AUDITOR, as_merchant, as_user, buy, fund, product, rows


async def _catalog(client: httpx.AsyncClient, **params: Any) -> list[str]:
    r = await client.get("/api/v1/products", params=params)
    assert r.status_code == 200, r.text
    return [p["name"] for p in r.json()["data"]]


async def test_a_merchant_creates_a_product(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/products", headers=as_merchant("m1"), json={
        "name": "Golden sword", "description": "Sharp", "price": 250, "currency": "usdt",
        "stock": 3, "metadata": {"sku": "sw-1"}})
    assert r.status_code == 201, r.text
    p = r.json()
    assert r.headers["ETag"] == '"v1"'
    assert {k: p[k] for k in ("merchant_id", "name", "description", "price", "currency",
                              "stock", "in_stock", "active", "metadata", "version")} == {
        "merchant_id": "m1", "name": "Golden sword", "description": "Sharp", "price": 250,
        "currency": "usdt", "stock": 3, "in_stock": True, "active": True,
        "metadata": {"sku": "sw-1"}, "version": 1}
    assert p["created_at"].endswith("Z")
    assert (await client.get(f"/api/v1/products/{p['id']}")).json() == p


@pytest.mark.parametrize("who", ["user", "auditor", "admin"])
async def test_only_merchants_create_products(client: httpx.AsyncClient, settings: Settings,
                                              who: str) -> None:
    headers = {"user": as_user("u1"), "auditor": AUDITOR, "admin": ADMIN}[who]
    r = await client.post("/api/v1/products", headers=headers, json={
        "name": "x", "price": 1, "currency": "points", "stock": 1})
    assert r.status_code == 403 and r.json()["reason"] == "merchant_required"
    assert await rows(settings.database_url, "SELECT id FROM products") == []


async def test_product_currencies_are_checked(client: httpx.AsyncClient, db_url: str) -> None:
    r = await client.post("/api/v1/products", headers=as_merchant("m1"), json={
        "name": "x", "price": 1, "currency": "gold", "stock": 1})
    assert r.status_code == 422 and r.json()["code"] == "unknown_currency"
    from asgi_lifespan import LifespanManager

    from coinpurse.app import create_app
    from tests.conftest import TEST_JWT_SECRET

    app = create_app(Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                              currencies="points:0,usdt:2", shop_currencies="points"))
    async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/api/v1/products", headers=as_merchant("m1"), json={
            "name": "x", "price": 1, "currency": "usdt", "stock": 1})
        assert r.status_code == 422 and r.json()["errors"][0]["type"] == "currency_not_sellable"


@pytest.mark.parametrize(("field", "value"), [
    ("price", 0), ("price", -5), ("price", 1.0), ("price", "10"), ("price", 2**63),
    ("stock", -1), ("stock", 2**63), ("stock", True), ("name", ""), ("name", "x" * 121),
    ("name", "a\u0000b"), ("description", "d" * 2001), ("active", "yes"), ("metadata", []),
    ("merchant_id", "m2"), ("currency", None),
])
async def test_product_bounds(client: httpx.AsyncClient, settings: Settings, field: str,
                              value: Any) -> None:
    body = {"name": "x", "price": 1, "currency": "points", "stock": 1, field: value}
    r = await client.post("/api/v1/products", headers=as_merchant("m1"), json=body)
    assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    assert await rows(settings.database_url, "SELECT id FROM products") == []


async def test_the_owner_changes_a_product(client: httpx.AsyncClient) -> None:
    p = await product(client, "m1", price=100, stock=5)
    r = await client.patch(f"/api/v1/products/{p['id']}", headers=as_merchant("m1"),
                           json={"price": 120, "stock": 8, "description": "new",
                                 "metadata": {"sku": "x-2"}})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert (changed["price"], changed["stock"], changed["description"], changed["version"],
            changed["metadata"]) == (120, 8, "new", 2, {"sku": "x-2"})
    assert changed["name"] == p["name"] and r.headers["ETag"] == '"v2"'
    sold_out = await client.patch(f"/api/v1/products/{p['id']}", headers=as_merchant("m1"),
                                  json={"stock": 0})
    assert sold_out.json()["in_stock"] is False


@pytest.mark.parametrize("body", [{}, {"name": None}, {"stock": None}, {"currency": "usdt"},
                                  {"merchant_id": "m2"}, {"stock": -1}, {"price": 0},
                                  {"active": None}])
async def test_a_bad_change_changes_nothing(client: httpx.AsyncClient,
                                            body: dict[str, Any]) -> None:
    p = await product(client, "m1")
    r = await client.patch(f"/api/v1/products/{p['id']}", headers=as_merchant("m1"), json=body)
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    assert (await client.get(f"/api/v1/products/{p['id']}")).json() == p


async def test_if_match_guards_an_absolute_stock(client: httpx.AsyncClient,
                                                 make_key: MakeKey) -> None:
    key = await make_key()
    await fund(client, key, "b1", 1000)
    p = await product(client, "m1", stock=5)
    seen = (await client.get(f"/api/v1/products/{p['id']}")).headers["ETag"]
    assert (await buy(client, "b1", p["id"])).status_code == 201  # a sale since: v2
    stale = await client.patch(f"/api/v1/products/{p['id']}", json={"stock": 10},
                               headers={**as_merchant("m1"), "If-Match": seen})
    assert stale.status_code == 412 and stale.json()["code"] == "precondition_failed"
    assert stale.json()["etag"] == '"v2"'
    assert (await client.get(f"/api/v1/products/{p['id']}")).json()["stock"] == 4
    fresh = await client.patch(f"/api/v1/products/{p['id']}", json={"stock": 10},
                               headers={**as_merchant("m1"), "If-Match": '"v1", "v2"'})
    assert fresh.status_code == 200 and fresh.json()["stock"] == 10
    weak = await client.patch(f"/api/v1/products/{p['id']}", json={"stock": 11},
                              headers={**as_merchant("m1"), "If-Match": 'W/"v3"'})
    assert weak.status_code == 412  # If-Match compares strongly
    anything = await client.patch(f"/api/v1/products/{p['id']}", json={"stock": 12},
                                  headers={**as_merchant("m1"), "If-Match": "*"})
    assert anything.status_code == 200


async def test_a_user_editing_someone_elses_product(client: httpx.AsyncClient) -> None:
    p = await product(client, "m1", price=100)
    hidden = await product(client, "m1", name="Hidden", active=False)
    for who in (as_merchant("m2"), as_user("u1"), AUDITOR):
        r = await client.patch(f"/api/v1/products/{p['id']}", headers=who, json={"price": 1})
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
        d = await client.delete(f"/api/v1/products/{p['id']}", headers=who)
        assert d.status_code == 403
        r = await client.patch(f"/api/v1/products/{hidden['id']}", headers=who,
                               json={"active": True})
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert (await client.get(f"/api/v1/products/{p['id']}")).json() == p
    assert (await client.get(f"/api/v1/products/{hidden['id']}")).status_code == 404
    mine = await client.get("/api/v1/merchant/products", headers=as_merchant("m1"))
    assert {x["id"]: x["version"] for x in mine.json()["data"]} == {p["id"]: 1,
                                                                   hidden["id"]: 1}
    # An admin may.
    r = await client.patch(f"/api/v1/products/{p['id']}", headers=ADMIN, json={"price": 90})
    assert r.status_code == 200 and r.json()["price"] == 90
    assert (await client.delete(f"/api/v1/products/{hidden['id']}", headers=ADMIN)
            ).status_code == 204


async def test_an_admin_without_two_factor_is_told_so(db_url: str) -> None:
    from asgi_lifespan import LifespanManager

    from coinpurse.app import create_app
    from tests.conftest import TEST_JWT_SECRET

    app = create_app(Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                              auth="builtin"))
    async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        p = await product(c, "m1")
        r = await c.patch(f"/api/v1/products/{p['id']}", json={"price": 1},
                          headers=auth(user_token("ops-1", role="admin")))
        assert r.status_code == 403 and r.json()["reason"] == "mfa_required"


async def test_delete_is_soft_and_final(client: httpx.AsyncClient, make_key: MakeKey,
                                        settings: Settings) -> None:
    key = await make_key()
    await fund(client, key, "b1", 1000)
    p = await product(client, "m1")
    order = (await buy(client, "b1", p["id"])).json()
    r = await client.delete(f"/api/v1/products/{p['id']}", headers=as_merchant("m1"))
    assert r.status_code == 204 and r.content == b""
    assert (await client.get(f"/api/v1/products/{p['id']}")).status_code == 404
    assert await _catalog(client) == []
    mine = await client.get("/api/v1/merchant/products", headers=as_merchant("m1"))
    assert mine.json()["data"] == []
    again = await client.delete(f"/api/v1/products/{p['id']}", headers=as_merchant("m1"))
    assert again.status_code == 404
    patch = await client.patch(f"/api/v1/products/{p['id']}", headers=as_merchant("m1"),
                               json={"active": True})
    assert patch.status_code == 404
    refused = await buy(client, "b1", p["id"])
    assert refused.status_code == 404 and refused.json()["code"] == "not_found"
    # The row stays: the order still shows what was bought.
    assert len(await rows(settings.database_url, "SELECT id FROM products")) == 1
    shown = await client.get(f"/api/v1/orders/{order['id']}", headers=as_user("b1"))
    assert shown.json()["product_name"] == "Golden sword"


async def test_the_catalog_filters_and_pages(client: httpx.AsyncClient) -> None:
    await product(client, "m1", name="Iron sword", price=50, stock=0)
    await product(client, "m1", name="Golden SWORD", price=500, stock=2)
    await product(client, "m2", name="Shield", price=120, stock=4, currency="usdt")
    await product(client, "m2", name="100% cotton_shirt", price=80, stock=1)
    await product(client, "m1", name="Hidden sword", price=10, active=False)

    assert await _catalog(client) == ["100% cotton_shirt", "Shield", "Golden SWORD",
                                      "Iron sword"]
    assert await _catalog(client, merchant_id="m1") == ["Golden SWORD", "Iron sword"]
    assert await _catalog(client, q="sWoRd") == ["Golden SWORD", "Iron sword"]
    assert await _catalog(client, q="%") == ["100% cotton_shirt"]  # no LIKE wildcards
    assert await _catalog(client, q="n_s") == ["100% cotton_shirt"]
    assert await _catalog(client, min_price=80, max_price=120) == ["100% cotton_shirt",
                                                                  "Shield"]
    assert await _catalog(client, currency="usdt") == ["Shield"]
    assert await _catalog(client, in_stock=True) == ["100% cotton_shirt", "Shield",
                                                     "Golden SWORD"]
    assert await _catalog(client, in_stock=False) == ["Iron sword"]
    unknown = await client.get("/api/v1/products", params={"currency": "gold"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_currency"

    names: list[str] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = (await client.get("/api/v1/products", params=params)).json()
        names += [p["name"] for p in page["data"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert names == await _catalog(client)

    mine = await client.get("/api/v1/merchant/products", headers=as_merchant("m1"))
    assert [p["name"] for p in mine.json()["data"]] == ["Hidden sword", "Golden SWORD",
                                                        "Iron sword"]
    inactive = await client.get("/api/v1/merchant/products", headers=as_merchant("m1"),
                                params={"active": "false"})
    assert [p["name"] for p in inactive.json()["data"]] == ["Hidden sword"]


async def test_the_catalog_answers_304_while_unchanged(client: httpx.AsyncClient,
                                                       settings: Settings) -> None:
    p = await product(client, "m1", price=100)
    first = await client.get("/api/v1/products")
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    assert first.headers["Cache-Control"] == \
        f"public, max-age={settings.shop_cache_max_age_s}"
    same = await client.get("/api/v1/products", headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.content == b""
    assert same.headers["ETag"] == etag and "Cache-Control" in same.headers
    listed = await client.get("/api/v1/products",
                              headers={"If-None-Match": f'"other", {etag.removeprefix("W/")}'})
    assert listed.status_code == 304
    # Another page of the catalog is another answer.
    other = await client.get("/api/v1/products", params={"q": "nothing"},
                             headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag

    await client.patch(f"/api/v1/products/{p['id']}", headers=as_merchant("m1"),
                       json={"price": 90})
    changed = await client.get("/api/v1/products", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.json()["data"][0]["price"] == 90

    one = await client.get(f"/api/v1/products/{p['id']}")
    assert one.headers["ETag"] == '"v2"'
    assert (await client.get(f"/api/v1/products/{p['id']}",
                             headers={"If-None-Match": '"v2"'})).status_code == 304
    assert (await client.get(f"/api/v1/products/{p['id']}",
                             headers={"If-None-Match": '"v1"'})).status_code == 200
