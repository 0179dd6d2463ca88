"""Hostile input: every answer is an RFC 9457 problem with a stable code, never a 500, and
nothing a refused request carried reaches the ledger."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import MakeKey, auth, user_token

CREDIT = "/internal/v1/wallet/credit"
DEBIT = "/internal/v1/wallet/debit"
TRANSFERS = "/internal/v1/transfers"
PROBLEM = "application/problem+json"
AMOUNT_MAX = 2**63 - 1

_idem = itertools.count(1)


def new_idem() -> str:
    return f"err-{next(_idem)}"


def body(**overrides: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"user_id": "u1", "currency": "points", "amount": 100,
                         "description": "Test", "reference_id": "ref-1"}
    b.update(overrides)
    return b


def raw_body(**overrides: str) -> bytes:
    """JSON text with fields given as raw JSON fragments, e.g. amount="100.0"."""
    fields = {"user_id": '"u1"', "currency": '"points"', "amount": "100",
              "description": '"Test"', "reference_id": '"ref-1"'}
    fields.update(overrides)
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


def hdrs(key: str, **extra: str) -> dict[str, str]:
    return {"X-API-Key": key, "Idempotency-Key": new_idem(),
            "Content-Type": "application/json", **extra}


def assert_problem(r: httpx.Response, status: int | None = None,
                   code: str | None = None) -> dict[str, Any]:
    assert r.status_code < 500, r.text
    assert r.status_code >= 400, r.text
    if status is not None:
        assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    problem: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail", "code"} <= problem.keys(), problem
    assert problem["status"] == r.status_code
    assert problem["type"] == f"/problems/{problem['code']}"
    assert isinstance(problem["detail"], str) and problem["detail"]
    if code is not None:
        assert problem["code"] == code, problem
    return problem


async def send(client: httpx.AsyncClient, key: str, content: bytes,
               path: str = CREDIT) -> httpx.Response:
    return await client.post(path, headers=hdrs(key), content=content)


async def balances_of(client: httpx.AsyncClient, key: str, address: str) -> dict[str, int]:
    r = await client.get(f"/internal/v1/accounts/{address}", headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    return {c: b["balance"] for c, b in r.json()["balances"].items()}


async def assert_untouched(client: httpx.AsyncClient, key: str) -> None:
    zero = {"points": 0, "usdt": 0, "diamonds": 0}
    assert await balances_of(client, key, "service:games") == zero
    assert await balances_of(client, key, "user:u1") == zero
    r = await client.get("/internal/v1/wallet/transactions/u1", headers={"X-API-Key": key})
    assert r.json()["data"] == []


@pytest.fixture
async def key(make_key: MakeKey) -> str:
    return await make_key()


# --- bodies that are not the right JSON ----------------------------------------------------


@pytest.mark.parametrize("content", [
    b'{"user_id": "u1", "amount": ',  # truncated
    b"{'user_id': 'u1'}",  # not JSON
    b"",  # empty
    b"null",
    b'"a string"',
    b"42",
    b"[]",
    b'[{"user_id":"u1","currency":"points","amount":1,"description":"d","reference_id":"r"}]',
    b'{"user_id":"u1","currency":"points","amount":1,"description":"\xff\xfe","reference_id":"r"}',
    b"\xef\xbb\xbf{}",  # BOM
], ids=["truncated", "single-quotes", "empty", "null", "string", "number", "empty-array",
        "array-of-body", "invalid-utf8", "bom"])
async def test_body_not_an_object(client: httpx.AsyncClient, key: str, content: bytes) -> None:
    problem = assert_problem(await send(client, key, content), 422, "validation_error")
    assert isinstance(problem["errors"], list)
    await assert_untouched(client, key)


async def test_malformed_json_says_so(client: httpx.AsyncClient, key: str) -> None:
    problem = assert_problem(await send(client, key, b'{"amount": 1,,}'), 422,
                             "validation_error")
    assert "not valid JSON" in problem["detail"]
    assert problem["errors"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type(client: httpx.AsyncClient, key: str,
                                  content_type: str) -> None:
    r = await client.post(CREDIT, headers={**hdrs(key), "Content-Type": content_type},
                          content=json.dumps(body()).encode())
    assert_problem(r, 422, "validation_error")
    await assert_untouched(client, key)


# --- amounts -------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [
    "100.0", '"100"', "true", "false", "null", "0", "-5", "1e2", "100.5", "NaN", "Infinity",
    "-Infinity", "1e400", str(2**63), str(2**64), "9" * 100, "[100]", '{"v":100}',
])
async def test_bad_amount(client: httpx.AsyncClient, key: str, amount: str) -> None:
    problem = assert_problem(await send(client, key, raw_body(amount=amount)), 422,
                             "validation_error")
    assert any("amount" in e["loc"] for e in problem["errors"]), problem
    await assert_untouched(client, key)


async def test_huge_number_literal(client: httpx.AsyncClient, key: str) -> None:
    # Python refuses to parse integers of more than 4300 digits: still a clean 422.
    assert_problem(await send(client, key, raw_body(amount="9" * 5000)), 422,
                   "validation_error")
    await assert_untouched(client, key)


async def test_missing_amount(client: httpx.AsyncClient, key: str) -> None:
    b = body()
    del b["amount"]
    problem = assert_problem(await send(client, key, json.dumps(b).encode()), 422,
                             "validation_error")
    assert problem["errors"][0]["type"] == "missing"


async def test_max_amount_then_overflow(client: httpx.AsyncClient, key: str) -> None:
    r = await client.post(CREDIT, headers=hdrs(key), json=body(amount=AMOUNT_MAX))
    assert r.status_code == 201, r.text
    assert r.json()["balance_after"] == AMOUNT_MAX
    r = await client.post(CREDIT, headers=hdrs(key), json=body(amount=AMOUNT_MAX))
    problem = assert_problem(r, 422, "balance_overflow")
    assert problem["posting_index"] == 0
    r = await client.post(CREDIT, headers=hdrs(key), json=body(amount=1))
    assert_problem(r, 422, "balance_overflow")
    user = await balances_of(client, key, "user:u1")
    service = await balances_of(client, key, "service:games")
    assert user["points"] == AMOUNT_MAX
    assert service["points"] == -AMOUNT_MAX
    r = await client.get("/internal/v1/wallet/transactions/u1", headers={"X-API-Key": key})
    assert [e["amount"] for e in r.json()["data"]] == [AMOUNT_MAX]
    # Spending some of it makes room again.
    r = await client.post(DEBIT, headers=hdrs(key), json=body(amount=AMOUNT_MAX))
    assert r.status_code == 201, r.text
    assert r.json()["balance_after"] == 0


async def test_system_account_overflow_downwards(client: httpx.AsyncClient, key: str) -> None:
    """service:games may go negative, but not below -2**63."""
    first = body(user_id="a", amount=AMOUNT_MAX)
    assert (await client.post(CREDIT, headers=hdrs(key), json=first)).status_code == 201
    r = await client.post(CREDIT, headers=hdrs(key), json=body(user_id="b", amount=1))
    assert r.status_code == 201, r.text  # exactly -2**63
    assert (await balances_of(client, key, "service:games"))["points"] == -(2**63)
    r = await client.post(CREDIT, headers=hdrs(key), json=body(user_id="c", amount=1))
    assert_problem(r, 422, "balance_overflow")
    assert (await balances_of(client, key, "user:c"))["points"] == 0


# --- other fields --------------------------------------------------------------------------


async def test_unknown_field(client: httpx.AsyncClient, key: str) -> None:
    r = await client.post(CREDIT, headers=hdrs(key), json=body(admin=True))
    problem = assert_problem(r, 422, "validation_error")
    assert problem["errors"][0]["type"] == "extra_forbidden"
    r = await client.post(TRANSFERS, headers=hdrs(key), json={
        "postings": [{"source": "world", "destination": "user:u1", "amount": 1,
                      "currency": "points", "fee": 1}],
        "description": "d", "reference_id": "r"})
    assert_problem(r, 422, "validation_error")
    await assert_untouched(client, key)


async def test_unknown_currency(client: httpx.AsyncClient, key: str) -> None:
    for currency in ("gold", "POINTS", "points ", "x" * 16):
        r = await client.post(CREDIT, headers=hdrs(key), json=body(currency=currency))
        assert_problem(r, 422, "unknown_currency")
    for currency in ("", "x" * 17):
        r = await client.post(CREDIT, headers=hdrs(key), json=body(currency=currency))
        assert_problem(r, 422, "validation_error")
    await assert_untouched(client, key)


@pytest.mark.parametrize(("field", "value"), [
    ("description", "d" * 256),
    ("description", ""),
    ("reference_id", "r" * 65),
    ("reference_id", ""),
    ("internal_notes", "n" * 1001),
    ("user_id", "a:b"),
    ("user_id", ""),
    ("user_id", "u" * 129),
    ("user_id", "spaced out"),
    ("user_id", "ünïcode"),
    ("user_id", 123),
    ("description", 5),
    ("metadata", []),
    ("metadata", "text"),
])
async def test_bad_field(client: httpx.AsyncClient, key: str, field: str, value: Any) -> None:
    problem = assert_problem(await client.post(CREDIT, headers=hdrs(key),
                                               json=body(**{field: value})),
                             422, "validation_error")
    assert any(field in e["loc"] for e in problem["errors"]), problem
    await assert_untouched(client, key)


async def test_longest_allowed_fields(client: httpx.AsyncClient, key: str) -> None:
    r = await client.post(CREDIT, headers=hdrs(key), json=body(
        description="d" * 255, reference_id="r" * 64, internal_notes="n" * 1000,
        user_id="u" * 128, metadata={"k": "v" * 4000}))
    assert r.status_code == 201, r.text
    assert r.json()["description"] == "d" * 255


@pytest.mark.parametrize("field", ["description", "reference_id", "internal_notes"])
@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800", "\\udfff", "\\ud800x"])
async def test_nul_and_lone_surrogates(client: httpx.AsyncClient, key: str, field: str,
                                       escape: str) -> None:
    content = raw_body(**{field: f'"a{escape}b"'})
    problem = assert_problem(await send(client, key, content), 422, "validation_error")
    assert any(field in e["loc"] for e in problem["errors"]), problem
    await assert_untouched(client, key)


async def test_lone_surrogate_in_metadata(client: httpx.AsyncClient, key: str) -> None:
    for meta in ('{"a":"\\ud800"}', '{"\\udc00":1}', '{"a":["\\ud800"]}'):
        assert_problem(await send(client, key, raw_body(metadata=meta)), 422,
                       "validation_error")
    await assert_untouched(client, key)


async def test_valid_surrogate_pair_and_nul_in_metadata_are_stored(
    client: httpx.AsyncClient, key: str
) -> None:
    """A proper pair is a real character; NUL inside metadata JSON is stored escaped."""
    content = raw_body(description='"coin \\ud83e\\ude99"', metadata='{"a":"x\\u0000y"}')
    r = await send(client, key, content)
    assert r.status_code == 201, r.text
    tx_id = r.json()["id"]
    r = await client.get(f"/internal/v1/transactions/{tx_id}", headers={"X-API-Key": key})
    assert r.json()["description"] == "coin \U0001fa99"
    assert r.json()["metadata"] == {"a": "x\x00y"}


async def test_metadata_too_big(client: httpx.AsyncClient, key: str) -> None:
    r = await client.post(CREDIT, headers=hdrs(key), json=body(metadata={"k": "v" * 4100}))
    problem = assert_problem(r, 422, "validation_error")
    assert problem["errors"][0]["loc"] == ["body", "metadata"]
    many = {f"k{i}": i for i in range(600)}
    r = await client.post(CREDIT, headers=hdrs(key), json=body(metadata=many))
    assert_problem(r, 422, "validation_error")
    await assert_untouched(client, key)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


async def test_metadata_depth(client: httpx.AsyncClient, key: str) -> None:
    r = await client.post(CREDIT, headers=hdrs(key), json=body(metadata=nested(50)))
    assert_problem(r, 422, "validation_error")
    r = await client.post(CREDIT, headers=hdrs(key), json=body(metadata=nested(5)))
    assert_problem(r, 422, "validation_error")  # a 5-deep object has 6 levels with its leaf
    await assert_untouched(client, key)
    r = await client.post(CREDIT, headers=hdrs(key), json=body(metadata=nested(4)))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("depth", [200, 900, 990, 1200, 20_000])
async def test_metadata_nested_deeper_than_python_recursion(
    client: httpx.AsyncClient, key: str, depth: int
) -> None:
    """Used to be a RecursionError (500) in the depth check, or in the JSON parser."""
    meta = "[" * depth + "]" * depth
    assert_problem(await send(client, key, raw_body(metadata='{"a":' + meta + "}")),
                   422, "validation_error")
    await assert_untouched(client, key)


async def test_deeply_nested_body(client: httpx.AsyncClient, key: str) -> None:
    # Too large to be read at all.
    assert_problem(await send(client, key, b"[" * 100_000), 413, "payload_too_large")
    # Small enough to be read, too deep to be parsed.
    assert_problem(await send(client, key, b"[" * 60_000), 422, "validation_error")
    assert_problem(await send(client, key, b'{"a":' * 10_000), 422, "validation_error")
    await assert_untouched(client, key)


async def test_body_too_large(client: httpx.AsyncClient, key: str) -> None:
    big = json.dumps(body(description="x" * 2_000_000)).encode()
    problem = assert_problem(await send(client, key, big), 413, "payload_too_large")
    assert "65536" in problem["detail"]
    # Just over the limit, too.
    padded = json.dumps(body()).encode()
    padded = padded[:-1] + b" " * (65_537 - len(padded)) + b"}"
    assert_problem(await send(client, key, padded), 413, "payload_too_large")
    await assert_untouched(client, key)


async def test_chunked_body_too_large(client: httpx.AsyncClient, key: str) -> None:
    """No Content-Length: the limit still applies while the body streams in."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"user_id":"u1","currency":"points","amount":1,"description":"'
        for _ in range(32):
            yield b"x" * 65_536
        yield b'","reference_id":"r"}'

    r = await client.post(CREDIT, headers=hdrs(key), content=chunks())
    assert "content-length" not in r.request.headers
    assert_problem(r, 413, "payload_too_large")
    await assert_untouched(client, key)


async def test_chunked_body_under_the_limit_is_fine(client: httpx.AsyncClient,
                                                    key: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        data = json.dumps(body()).encode()
        for i in range(0, len(data), 7):
            yield data[i:i + 7]

    r = await client.post(CREDIT, headers=hdrs(key), content=chunks())
    assert r.status_code == 201, r.text


# --- transfers -----------------------------------------------------------------------------


def transfer(*postings: dict[str, Any]) -> dict[str, Any]:
    return {"postings": list(postings), "description": "d", "reference_id": "r"}


def posting(source: str = "world", destination: str = "user:u1", amount: Any = 1,
            currency: str = "points") -> dict[str, Any]:
    return {"source": source, "destination": destination, "amount": amount,
            "currency": currency}


async def test_transfer_bad_shapes(client: httpx.AsyncClient, key: str) -> None:
    bad = [
        transfer(posting("user:u1", "user:u1")),
        transfer(posting("world", "world")),
        transfer(*[posting() for _ in range(65)]),
        transfer(),
        {"postings": posting(), "description": "d", "reference_id": "r"},
        transfer(posting(source="User:u1")),
        transfer(posting(source="user:")),
        transfer(posting(destination="a:b:c:d:e")),
        transfer(posting(destination="user:" + "x" * 129)),
        transfer(posting(destination="user:u1\x00")),
        transfer(posting(amount=0)),
        transfer(posting(amount=1.5)),
        {**transfer(posting()), "kind": "Gift!"},
        {**transfer(posting()), "kind": "k" * 33},
    ]
    for b in bad:
        r = await client.post(TRANSFERS, headers=hdrs(key), json=b)
        assert_problem(r, 422, "validation_error")
    await assert_untouched(client, key)
    assert await balances_of(client, key, "world") == {"points": 0, "usdt": 0, "diamonds": 0}


async def test_transfer_with_64_postings_is_accepted(client: httpx.AsyncClient,
                                                     key: str) -> None:
    r = await client.post(TRANSFERS, headers=hdrs(key),
                          json=transfer(*[posting() for _ in range(64)]))
    assert r.status_code == 201, r.text
    assert (await balances_of(client, key, "user:u1"))["points"] == 64


# --- headers, routes, methods, queries -----------------------------------------------------


async def test_unknown_route(client: httpx.AsyncClient, key: str) -> None:
    for path in ("/nope", "/internal/v1/nope", "/api/v2/wallet/balance",
                 "/internal/v1/wallet/balance/"):
        r = await client.get(path, headers={"X-API-Key": key})
        assert_problem(r, 404, "not_found")
    r = await client.post("/internal/v1/wallet/refund", headers=hdrs(key), json=body())
    assert_problem(r, 404, "not_found")


async def test_wrong_method(client: httpx.AsyncClient, key: str) -> None:
    r = await client.get(CREDIT, headers={"X-API-Key": key})
    assert_problem(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"
    for method in ("PUT", "DELETE", "PATCH"):
        r = await client.request(method, CREDIT, headers=hdrs(key), json=body())
        assert_problem(r, 405, "method_not_allowed")
    r = await client.post("/internal/v1/wallet/balance/u1", headers=hdrs(key), json=body())
    assert_problem(r, 405, "method_not_allowed")
    r = await client.delete("/api/v1/wallet/balance", headers=auth(user_token("u1")))
    assert_problem(r, 405, "method_not_allowed")
    await assert_untouched(client, key)


async def test_bad_headers(client: httpx.AsyncClient, key: str) -> None:
    h = hdrs(key)
    r = await client.post(CREDIT, json=body(),
                          headers={**h, "Idempotency-Key": "caf\xe9".encode("latin-1")})
    assert_problem(r, 422, "validation_error")
    r = await client.post(CREDIT, json=body(), headers={**h, "Idempotency-Key": "a\tb"})
    assert_problem(r, 422, "validation_error")
    r = await client.post(CREDIT, json=body(), headers={**h, "X-Service-Name": "x" * 200})
    assert_problem(r, 422, "validation_error")
    r = await client.get("/internal/v1/wallet/balance/u1",
                         headers={"X-API-Key": "cpk_\xe9".encode("latin-1")})
    assert_problem(r, 401, "unauthorized")
    await assert_untouched(client, key)


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "garbage", "!!!", cursor_of("x12"), cursor_of("e"), cursor_of("e-1"), cursor_of("e1.5"),
    cursor_of("e9999999999999999999"), cursor_of("e" + "9" * 19 + "0"),
    cursor_of("e9223372036854775808"), cursor_of("e\u00b2"), cursor_of("e\u0661"),
    "c" * 65,
])
async def test_bad_cursor(client: httpx.AsyncClient, key: str, cursor: str) -> None:
    """Numbers past BIGINT and non-ASCII digits used to reach the driver: a 500."""
    r = await client.get("/internal/v1/wallet/transactions/u1", params={"cursor": cursor},
                         headers={"X-API-Key": key})
    assert_problem(r, 422, "validation_error")
    r = await client.get("/api/v1/wallet/transactions", params={"cursor": cursor},
                         headers=auth(user_token("u1")))
    assert_problem(r, 422, "validation_error")


async def test_largest_cursor_is_accepted(client: httpx.AsyncClient, key: str) -> None:
    r = await client.get("/internal/v1/wallet/transactions/u1",
                         params={"cursor": cursor_of(f"e{2**63 - 1}")},
                         headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    assert r.json() == {"data": [], "next_cursor": None}


@pytest.mark.parametrize("params", [
    {"limit": "9" * 30}, {"limit": "1.5"}, {"limit": ""}, {"currency": "c" * 17},
])
async def test_bad_query(client: httpx.AsyncClient, key: str, params: dict[str, str]) -> None:
    r = await client.get("/internal/v1/wallet/transactions/u1", params=params,
                         headers={"X-API-Key": key})
    assert_problem(r, 422, "validation_error")


async def test_bad_path_parameters(client: httpx.AsyncClient, key: str) -> None:
    h = {"X-API-Key": key}
    for path in ("/internal/v1/wallet/balance/a:b", "/internal/v1/wallet/balance/a%00b",
                 "/internal/v1/wallet/balance/" + "u" * 129,
                 "/internal/v1/wallet/transactions/a:b",
                 "/internal/v1/accounts/UPPER", "/internal/v1/accounts/a:b:c:d:e",
                 "/internal/v1/accounts/user:" + "x" * 300,
                 "/internal/v1/transactions/" + "t" * 65,
                 # A NUL used to reach PostgreSQL and fail there as a 500.
                 "/internal/v1/transactions/%00", "/internal/v1/transactions/a%00b",
                 "/internal/v1/transactions/%FF", "/internal/v1/transactions/caf%C3%A9",
                 "/internal/v1/transactions/a%20b"):
        assert_problem(await client.get(path, headers=h), 422, "validation_error")
    r = await client.get("/internal/v1/transactions/01a1fe9d-0000-7000-8000-000000000000",
                         headers=h)
    assert_problem(r, 404, "not_found")


@pytest.mark.parametrize(("method", "url"), [
    ("GET", "/internal/v1/holds/%00"), ("POST", "/internal/v1/holds/a%00b/capture"),
    ("POST", "/internal/v1/holds/%00/void"),
    ("GET", "/admin/v1/payment-orders?status=%00"), ("GET", "/admin/v1/withdrawals?user_id=a%00"),
    ("GET", "/admin/v1/kyc/submissions?status=%00"), ("GET", "/admin/v1/kyc/users/%00"),
    ("GET", "/admin/v1/webhook-events?provider=%00"), ("GET", "/admin/v1/audit-log?actor=%00"),
    ("GET", "/admin/v1/transactions?service=%00"), ("GET", "/admin/v1/gifts?gift_type=%00"),
    ("GET", "/admin/v1/adjustments?status=%00"), ("POST", "/admin/v1/keys/%00/revoke"),
    ("POST", "/admin/v1/adjustments/%00/approve"),
    ("POST", "/admin/v1/transactions/%00/reverse"),
])
async def test_nul_anywhere_in_the_url(client: httpx.AsyncClient, key: str, method: str,
                                       url: str) -> None:
    """Path and query parameters without a pattern took a NUL to PostgreSQL: a 500."""
    h = {"X-API-Key": key, "Idempotency-Key": new_idem(),
         **auth(user_token("ops-1", role="admin"))}
    r = await client.request(method, url, headers=h, json={"reason": "a reason"})
    problem = assert_problem(r, 422, "validation_error")
    assert "NUL" in problem["detail"]


@pytest.mark.parametrize("when", [
    "2026-01-01T00:00:00",  # no zone: the gift report sent it to the database as is
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",  # outside datetime in UTC
])
@pytest.mark.parametrize("route", ["/admin/v1/transactions", "/admin/v1/gifts"])
@pytest.mark.parametrize("name", ["created_from", "created_to"])
async def test_bad_datetimes_in_admin_filters(client: httpx.AsyncClient, route: str,
                                              name: str, when: str) -> None:
    r = await client.get(route, params={name: when},
                         headers=auth(user_token("ops-1", role="admin")))
    assert_problem(r, 422, "validation_error")


async def test_extreme_but_valid_datetimes_in_admin_filters(client: httpx.AsyncClient) -> None:
    h = auth(user_token("ops-1", role="admin"))
    for route in ("/admin/v1/transactions", "/admin/v1/gifts"):
        r = await client.get(route, headers=h, params={
            "created_from": "0001-01-01T00:00:00Z", "created_to": "9999-12-31T23:59:59+01:00"})
        assert r.status_code == 200, r.text


# --- the ledger after all of it ------------------------------------------------------------


async def test_ledger_unchanged_after_a_barrage(client: httpx.AsyncClient, key: str,
                                                make_key: MakeKey) -> None:
    """Everything refused, then the books: nothing moved."""
    bank = await make_key(service="bank")
    r = await client.post(CREDIT, headers=hdrs(bank), json=body(user_id="rich", amount=50))
    assert r.status_code == 201, r.text
    barrage: list[tuple[str, bytes]] = [
        (CREDIT, b"{"), (CREDIT, b"[]"), (CREDIT, raw_body(amount="100.0")),
        (CREDIT, raw_body(amount='"100"')), (CREDIT, raw_body(amount="true")),
        (CREDIT, raw_body(amount="0")), (CREDIT, raw_body(amount="-5")),
        (CREDIT, raw_body(amount=str(2**63))), (CREDIT, raw_body(currency='"gold"')),
        (CREDIT, raw_body(extra="1")), (CREDIT, raw_body(user_id='"a:b"')),
        (CREDIT, raw_body(description='"a\\u0000b"')),
        (CREDIT, raw_body(description='"a\\ud800b"')),
        (DEBIT, raw_body(user_id='"rich"', amount="51")),
        (DEBIT, raw_body(amount="1")),
        (TRANSFERS, json.dumps(transfer(posting("user:rich", "user:u1", 30),
                                        posting("user:rich", "user:u1", 30))).encode()),
        (TRANSFERS, json.dumps(transfer(posting("user:u1", "user:u1"))).encode()),
    ]
    for path, content in barrage:
        assert_problem(await send(client, key, content, path))
    await assert_untouched(client, key)  # service:games and user:u1 still zero
    assert (await balances_of(client, key, "user:rich"))["points"] == 50
    assert (await balances_of(client, key, "service:bank"))["points"] == -50
    r = await client.get("/internal/v1/wallet/transactions/rich", headers={"X-API-Key": key})
    assert len(r.json()["data"]) == 1
