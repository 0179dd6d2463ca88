"""Bad input on every shop route, sent by callers who may use it (a merchant on its own
product, a buyer with money, the order's merchant) on real ids, so that each hostile value
reaches the route's own checks: never a 5xx, every refusal a problem, the ledger whole.

(``tests/test_fuzz_routes.py`` sends the same values to every route of the API with a
plain user's token and made-up ids.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from tests.conftest import MakeKey
from tests.invariants import assert_invariants, ledger_state_async
from tests.shop.conftest import ADMIN, as_merchant, as_user, buy, fund, product
from tests.test_fuzz_routes import BODY_VALUES, TEXT_VALUES, _leaves, _with

HEADER_VALUES = ["", "*", 'W/""', '"', '"v1", ', "," * 100, "x" * 3000, 'W/"v1"', '"v999"']


def _bodies(base: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    for leaf in _leaves(base):
        for fragment in BODY_VALUES:
            yield f"{'.'.join(map(str, leaf))}={fragment[:30]}", _with(base, leaf, fragment)
    yield "unknown field", json.dumps({**base, "surprise": 1}).encode()
    yield "wrong type", json.dumps({k: [v] for k, v in base.items()}).encode()
    for raw in (b"", b"null", b"[]", b"{", b'"x"', b"\xff", b'{"a": 1e999}'):
        yield f"raw {raw!r}", raw


async def test_no_shop_route_answers_5xx(client: httpx.AsyncClient, make_key: MakeKey,
                                         db_url: str) -> None:
    key = await make_key()
    await fund(client, key, "b1", 10**12)
    await fund(client, key, "m1", 10**12)
    item = await product(client, "m1", price=10_000, stock=10**9)
    order = (await buy(client, "b1", item["id"])).json()
    merchant, buyer = as_merchant("m1"), as_user("b1")
    failures: list[str] = []
    sent = 0

    async def check(what: str, method: str, url: str, headers: dict[str, str],
                    body: bytes | None = None, params: str = "") -> None:
        nonlocal sent
        sent += 1
        h = {**headers, "Content-Type": "application/json",
             "Idempotency-Key": f"bad-{sent}"}
        r = await client.request(method, url + (f"?{params}" if params else ""), headers=h,
                                 content=body)
        if r.status_code >= 500:
            failures.append(f"{method} {url} {what}: {r.status_code} {r.text[:200]}")
        elif r.status_code >= 400 and not r.headers["content-type"].startswith(
                "application/problem+json"):
            failures.append(f"{method} {url} {what}: {r.status_code} not a problem")

    bodies: list[tuple[str, str, dict[str, str], dict[str, Any]]] = [
        ("POST", "/api/v1/products", merchant,
         {"name": "Sword", "description": "d", "price": 10, "currency": "points",
          "stock": 3, "active": True, "metadata": {"a": 1}}),
        ("PATCH", f"/api/v1/products/{item['id']}", merchant,
         {"name": "Shield", "description": "d", "price": 10_000, "stock": 10**9,
          "active": True, "metadata": {"a": 1}}),
        ("POST", "/api/v1/orders", buyer,
         {"product_id": item["id"], "quantity": 1, "expected_unit_price": 10_000}),
        ("POST", f"/api/v1/orders/{order['id']}/refund", merchant,
         {"amount": 1, "restock": False, "reason": "damaged"}),
    ]
    for method, url, who, base in bodies:
        for what, raw in _bodies(base):
            await check(what, method, url, who, raw)

    queries: list[tuple[str, dict[str, str], list[str]]] = [
        ("/api/v1/products", {}, ["merchant_id", "q", "min_price", "max_price", "currency",
                                  "in_stock", "limit", "cursor"]),
        ("/api/v1/merchant/products", merchant, ["active", "q", "currency", "in_stock",
                                                 "limit", "cursor"]),
        ("/api/v1/orders", buyer, ["status", "limit", "cursor"]),
        ("/api/v1/merchant/sales", merchant, ["product_id", "status", "currency",
                                              "created_from", "created_to", "limit",
                                              "cursor"]),
        ("/admin/v1/orders", ADMIN, ["buyer_id", "merchant_id", "product_id", "status",
                                     "currency", "created_from", "created_to", "limit",
                                     "cursor"]),
    ]
    for url, who, names in queries:
        for name in names:
            for value in TEXT_VALUES:
                await check(f"{name}={value[:30]}", "GET", url, who, params=f"{name}={value}")

    for value in TEXT_VALUES:
        if not value or value == "..":
            continue
        for method, template, who in (
                ("GET", "/api/v1/products/{}", {}),
                ("PATCH", "/api/v1/products/{}", merchant),
                ("DELETE", "/api/v1/products/{}", merchant),
                ("GET", "/api/v1/orders/{}", buyer),
                ("POST", "/api/v1/orders/{}/refund", merchant)):
            body = b'{"price": 5}' if method == "PATCH" else b'{"reason": "r"}'
            await check(f"path {value[:30]}", method, template.format(value), who, body)

    for value in HEADER_VALUES:
        await check(f"If-None-Match {value[:20]}", "GET", "/api/v1/products",
                    {"If-None-Match": value})
        await check(f"If-None-Match {value[:20]}", "GET", f"/api/v1/products/{item['id']}",
                    {"If-None-Match": value})
        await check(f"If-Match {value[:20]}", "PATCH", f"/api/v1/products/{item['id']}",
                    {**merchant, "If-Match": value}, b'{"price": 10000}')

    assert not failures, "\n".join(failures)
    assert sent > 1000
    assert_invariants(await ledger_state_async(db_url))
