"""Every route of the OpenAPI document, with hostile values in each path parameter, query
parameter and body field, on both databases: the answer is never a 5xx, and every refusal is
an RFC 9457 problem.

One test per operation; it sends the values one at a time on top of a valid request and
reports every 5xx it saw, so a failure lists them all.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from coinpurse.app import create_app
from coinpurse.config import Settings
from tests.conftest import TEST_JWT_SECRET, MakeKey, auth, user_token

_SETTINGS = dict(
    jwt_secret=TEST_JWT_SECRET, currencies="points:0,usdt:2,diamonds:0", auth="builtin",
    rate_limit_user="off", rate_limit_ip="off", rate_limit_login="off",
    rate_limit_login_ip="off", withdrawal_currencies="points", inbox_poll_s=0,
)


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    app = create_app(Settings(database_url="sqlite:///unused.db", **_SETTINGS))  # type: ignore[arg-type]
    doc = app.openapi()
    ops = [(method.upper(), path, op) for path, methods in doc["paths"].items()
           for method, op in methods.items()]
    return [(m, p, {**op, "_components": doc["components"]["schemas"]}) for m, p, op in ops]


OPERATIONS = _operations()
_ids = itertools.count(1)

# A valid body per request schema: the base that each hostile value is put into.
BODIES: dict[str, dict[str, Any]] = {
    "WalletChangeIn": {"user_id": "u1", "currency": "points", "amount": 5,
                       "description": "d", "reference_id": "r", "metadata": {"a": 1}},
    "TransferIn": {"postings": [{"source": "world", "destination": "user:u1", "amount": 5,
                                 "currency": "points"}],
                   "description": "d", "reference_id": "r", "metadata": {"a": 1}},
    "BatchIn": {"transfers": [{"postings": [{"source": "world", "destination": "user:u1",
                                             "amount": 5, "currency": "points"}],
                               "description": "d", "reference_id": "r"}]},
    "HoldIn": {"user_id": "u1", "currency": "points", "amount": 1, "description": "d",
               "reference_id": "r", "expires_in_s": 60, "metadata": {"a": 1}},
    "CaptureIn": {"amount": 1},
    "GiftIn": {"to_user_id": "u2", "amount": 1, "currency": "points", "message": "hi",
               "context_id": "c"},
    "AgencyIn": {"agency_id": "a1"},
    "TopupIn": {"package_id": "small", "provider": "mock"},
    "VerifyIn": {"payment_id": "p", "signature": "s"},
    "WithdrawalIn": {"currency": "points", "amount": 10, "destination": {"type": "x"}},
    "RejectIn": {"reason": "because"},
    "KycIn": {"tier": 1, "full_name": "A", "date_of_birth": "1990-01-01", "country": "GB"},
    "coinpurse__kyc__schemas__DecisionIn": {"reason": "ok"},
    "DecisionIn": {"reason": "ok"},  # KYC's, once no other model has its name
    "AdjustmentDecisionIn": {"note": "ok"},
    "RegisterIn": {"email": "a@example.com", "password": "correct horse battery"},
    "LoginIn": {"email": "a@example.com", "password": "correct horse battery"},
    "RefreshIn": {"refresh_token": "x"},
    "CodeIn": {"code": "123456"},
    "DisableIn": {"totp_code": "123456"},
    "KeyIn": {"service": "games", "scopes": ["wallet:read"]},
    "RotateIn": {"grace_s": 10},
    "AdjustmentIn": {"user_id": "u1", "currency": "points", "amount": 1,
                     "direction": "credit", "reason": "why not"},
    "ReverseIn": {"reason": "oops"},
    "ProductIn": {"name": "Sword", "description": "d", "price": 10, "currency": "points",
                  "stock": 3, "active": True, "metadata": {"a": 1}},
    "ProductPatchIn": {"name": "Shield", "price": 12, "stock": 4, "active": False},
    "OrderIn": {"product_id": "0190a0b0-0000-7000-8000-000000000001", "quantity": 1,
                "expected_unit_price": 10},
    "RefundIn": {"amount": 5, "restock": True, "reason": "damaged"},
    "WalletDebitIn": {"user_id": "u1", "currency": "points", "amount": 5, "description": "d",
                      "reference_id": "r", "metadata": {"a": 1}, "use_bonus": True,
                      "category": "slots"},
    "ClaimIn": {"code": "WELCOME"},
    "GrantIn": {"user_id": "u1", "promotion_code": "WELCOME", "amount": 5, "reason": "r"},
    "ActivityIn": {"user_id": "u1", "currency": "points", "amount": 5, "category": "slots",
                   "reference_id": "r"},
    "ReferralIn": {"referrer_user_id": "u1", "referee_user_id": "u2"},
    "PromotionIn": {"code": "WELCOME", "kind": "deposit_match", "currency": "points",
                    "description": "d", "percent_bp": 5000, "max_bonus": 100,
                    "min_deposit": 10, "wagering_multiplier": 2,
                    "contributions": {"slots": 10000}, "default_contribution_bp": 0,
                    "max_conversion": 50, "expires_in_days": 7,
                    "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z",
                    "active": True, "automatic": False, "per_user_limit": 1, "budget": 1000},
    "PromotionPatchIn": {"description": "e", "max_bonus": 20, "active": False},
    "ForfeitIn": {"reason": "abuse"},
    "WebhookEndpointIn": {"url": "https://example.com/hook", "events": ["topup.*"],
                          "description": "d", "enabled": True},
    "WebhookEndpointPatchIn": {"url": "https://example.com/hook", "events": ["*"],
                               "description": "d", "enabled": False},
    "SecretRotateIn": {"grace_s": 60},
    "ReconciliationIn": {"kind": "chain", "mode": "incremental"},
    "BalanceMonitorIn": {"address": "service:games", "currency": "points",
                         "condition": "below", "amount": -5, "description": "d"},
}

# JSON fragments, so that lone surrogates and numbers beyond 64 bits reach the server.
BODY_VALUES = [
    '"\\u0000"', '"a\\u0000b"', '"\\ud800"', '"x\\udfff"', '""', '" "', '"' + "x" * 3000 + '"',
    "0", "-1", "1.5", "1e400", "9223372036854775807", "9223372036854775808",
    "18446744073709551616", "-9223372036854775809", "1" + "0" * 300, "true", "null", "[]",
    "{}", '{"\\u0000": 1}', '{"a": "\\ud800"}', '["\\u0000"]', '[[[[[[[[[[1]]]]]]]]]]',
    '"long enough\\ud800 text"', '"a\\u0000@example.com"', '"0000-01-01"',
    '"9999-12-31T23:59:59-14:00"', '"0001-01-01T00:00:00+14:00"',
]
# Raw, already percent-encoded: the server decodes them.
TEXT_VALUES = [
    "%00", "a%00b", "%FF", "%ED%A0%80", "-1", "0", "1000", "1.5", "true", "",
    "9223372036854775807", "9223372036854775808", "18446744073709551616",
    "-9223372036854775809", "x" * 300, "..", "%2F",
    "2020-01-01T00:00:00", "0001-01-01T00:00:00%2B14:00", "9999-12-31T23:59:59-14:00",
    "0000-01-01T00:00:00Z", "99999-01-01T00:00:00Z", "2020-13-45T00:00:00Z",
]
PATH_DEFAULTS = {"user_id": "u1", "address": "user:u1", "action": "pay", "provider": "mock",
                 "event_id": "1", "key_id": "k1"}


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> str | None:
    """The component name of a request body schema (possibly ``X | None``)."""
    if "$ref" in schema:
        return str(schema["$ref"].rsplit("/", 1)[1])
    for option in schema.get("anyOf", []):
        name = _resolve(option, components)
        if name:
            return name
    return None


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value a hostile value can go, containers included."""
    if path:
        yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))


_MARK = "\x1fHOSTILE\x1f"


def _with(body: Any, path: tuple[Any, ...], fragment: str) -> bytes:
    changed = copy.deepcopy(body)
    target = changed
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = _MARK
    return json.dumps(changed).replace(json.dumps(_MARK), fragment).encode()


def _requests(method: str, path: str, op: dict[str, Any]
              ) -> Iterator[tuple[str, str, str, bytes | None]]:
    """(what, url, query, body) for each hostile variant of one operation."""
    params = op.get("parameters", [])
    path_params = {p["name"] for p in params if p["in"] == "path"}
    query_params = [p["name"] for p in params if p["in"] == "query"]
    base_path = {n: PATH_DEFAULTS.get(n, "0190a0b0-0000-7000-8000-000000000001")
                 for n in path_params}

    def url(values: dict[str, str]) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)

    schema = (op.get("requestBody", {}).get("content", {}).get("application/json", {})
              .get("schema"))
    body: Any = None
    if schema is not None:
        name = _resolve(schema, op["_components"])
        assert name in BODIES, f"add a valid {name} to BODIES"
        body = BODIES[name]
    raw = json.dumps(body).encode() if body is not None else None
    yield "valid", url({k: quote(v) for k, v in base_path.items()}), "", raw
    for name in sorted(path_params):
        for value in TEXT_VALUES:
            if not value or value == "..":
                continue  # another route, not a parameter
            yield (f"path {name}={value[:40]}",
                   url({**{k: quote(v) for k, v in base_path.items()}, name: value}), "", raw)
    for name in query_params:
        for value in TEXT_VALUES:
            yield f"query {name}={value[:40]}", url(base_path), f"{name}={value}", raw
    if body is not None:
        for leaf in _leaves(body):
            for fragment in BODY_VALUES:
                yield (f"body {'.'.join(map(str, leaf))}={fragment[:40]}", url(base_path), "",
                       _with(body, leaf, fragment))
        if isinstance(body, dict):
            yield ("body unknown field", url(base_path), "",
                   json.dumps({**body, "surprise": 1}).encode())
        for raw_body in (b"", b"null", b"[]", b"{", b'"x"', b"\xff"):
            yield f"body {raw_body!r}", url(base_path), "", raw_body


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, **_SETTINGS)  # type: ignore[arg-type]


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Unexpected exceptions become the 500 a server would send, so all are collected."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
async def headers(make_key: MakeKey) -> AsyncIterator[dict[str, dict[str, str]]]:
    yield {
        "/internal/": {"X-API-Key": await make_key()},
        "/admin/": auth(user_token("ops-1", role="admin", mfa=True)),
        "": auth(user_token("u1")),
    }


def _streams(op: dict[str, Any]) -> bool:
    return "text/event-stream" in op["responses"].get("200", {}).get("content", {})


def _auth_for(path: str, headers: dict[str, dict[str, str]]) -> dict[str, str]:
    return next(h for prefix, h in headers.items() if path.startswith(prefix))


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS,
                         ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
async def test_no_route_answers_5xx(client: httpx.AsyncClient,
                                    headers: dict[str, dict[str, str]],
                                    method: str, path: str, op: dict[str, Any]) -> None:
    failures: list[str] = []
    for what, url, query, body in _requests(method, path, op):
        h = {**_auth_for(path, headers), "Idempotency-Key": f"fuzz-{next(_ids)}",
             "Content-Type": "application/json"}
        target = url + (f"?{query}" if query else "")
        if _streams(op):  # an endless stream: a request still open after 1 s was accepted
            try:
                r = await asyncio.wait_for(
                    client.request(method, target, headers=h, content=body), 1.0)
            except TimeoutError:
                continue
        else:
            r = await client.request(method, target, headers=h, content=body)
        if r.status_code >= 500:
            failures.append(f"{what}: {r.status_code} {r.text[:200]}")
        elif r.status_code >= 400 and not r.headers.get("content-type", "").startswith(
                "application/problem+json"):
            failures.append(f"{what}: {r.status_code} not a problem: {r.text[:200]}")
    assert not failures, "\n".join(failures)
