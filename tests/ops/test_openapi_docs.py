"""The OpenAPI document is valid and complete for generated clients, and the docs pages
work offline."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from coinpurse.app import create_app
from coinpurse.config import Settings

MONEY_POSTS = {"wallet_credit", "wallet_debit", "wallet_transfer", "wallet_transfer_batch",
               "hold_place", "hold_capture", "hold_void", "send_gift",
               "payment_create_topup", "request_withdrawal", "admin_create_adjustment"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return create_app(Settings(database_url="sqlite:///unused.db")).openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    validate(doc)


def test_operation_ids_fit_generated_clients(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _m, _p, op in operations(doc)]
    assert len(ids) == len(set(ids))
    bad = [i for i in ids if not re.fullmatch(r"[a-z][a-z0-9_]{2,39}", i)
           or re.search(r"_(get|post|put|delete|patch)$|_v1_", i)]
    assert bad == []
    found = {op["operationId"] for _m, _p, op in operations(doc)}
    assert {"wallet_credit", "wallet_debit", "hold_capture", "ops_ready"} <= found


def test_every_operation_is_described(doc: dict[str, Any]) -> None:
    missing = [f"{m} {p}" for m, p, op in operations(doc)
               if not op.get("summary") or not op.get("description")]
    assert missing == []


def test_every_request_body_has_an_example(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    missing = []
    for m, p, op in operations(doc):
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            continue
        schema = body["schema"]
        refs = [schema.get("$ref")] + [o.get("$ref") for o in schema.get("anyOf", [])]
        named = [schemas[r.rsplit("/", 1)[1]] for r in refs if r]
        if not ("example" in body or "examples" in body
                or any("examples" in s or "example" in s for s in named)):
            missing.append(f"{m} {p}")
    assert missing == []


def test_every_422_is_a_problem(doc: dict[str, Any]) -> None:
    wrong = []
    for m, p, op in operations(doc):
        takes_input = op.get("parameters") or "requestBody" in op
        r422 = op["responses"].get("422")
        if takes_input and r422 is None:
            wrong.append(f"{m} {p}: no 422")
        elif r422 is not None and list(r422["content"]) != ["application/problem+json"]:
            wrong.append(f"{m} {p}: {list(r422['content'])}")
        elif r422 is not None:
            media = r422["content"]["application/problem+json"]
            assert media["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert "validation_error" in media["examples"]
    assert wrong == []
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_headers_are_documented(doc: dict[str, Any]) -> None:
    headers = doc["components"]["headers"]
    assert {"X-Request-ID", "Idempotent-Replayed", "Retry-After", "RateLimit-Limit",
            "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy"} <= set(headers)
    for m, p, op in operations(doc):
        params = {x["name"].lower() for x in op.get("parameters", []) if x["in"] == "header"}
        if op["operationId"] in MONEY_POSTS:
            assert "idempotency-key" in params, f"{m} {p}"
        for status, response in op["responses"].items():
            names = set(response.get("headers", {}))
            assert "X-Request-ID" in names, f"{m} {p} {status}"
            if "idempotency-key" in params and status.startswith("2"):
                assert "Idempotent-Replayed" in names, f"{m} {p} {status}"
            if status in ("429", "503"):
                assert "Retry-After" in names, f"{m} {p} {status}"
            if p.startswith(("/api/", "/admin/")):
                assert "RateLimit-Remaining" in names, f"{m} {p} {status}"


def test_amounts_are_64_bit_integers(doc: dict[str, Any]) -> None:
    """Every amount-like field is an integer with format int64 (never a number/float)."""
    seen = 0

    def walk(schema: Any, name: str = "") -> None:
        nonlocal seen
        if isinstance(schema, dict):
            if re.search(r"amount|balance|held|available|price|fee|commission|total|debt",
                         name) and schema.get("type") in ("integer", "number"):
                seen += 1
                assert schema["type"] == "integer" and schema["format"] == "int64", name
            for key, value in schema.items():
                if key == "properties":
                    for prop, sub in value.items():
                        walk(sub, prop)
                elif key in ("anyOf", "allOf", "oneOf") and isinstance(value, list):
                    for sub in value:
                        walk(sub, name)
                elif isinstance(value, dict | list):
                    walk(value, "")
        elif isinstance(schema, list):
            for sub in schema:
                walk(sub, name)

    walk(doc["components"]["schemas"])
    assert seen > 20  # the check looked at the amounts


async def test_docs_pages_work_offline(client: httpx.AsyncClient) -> None:
    for page, assets in (("/docs", ["swagger-ui-bundle.js", "swagger-ui.css"]),
                         ("/redoc", ["redoc.standalone.js"])):
        r = await client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""",
                          r.text)
        found = [a or b for a, b in urls]
        assert found and all(u.startswith("/") for u in found), found
        assert "cdn" not in r.text.lower() and "fonts.googleapis" not in r.text
        for asset in assets:
            assert f"/docs-assets/{asset}" in r.text
            got = await client.get(f"/docs-assets/{asset}")
            assert got.status_code == 200 and len(got.content) > 10_000, asset
    assert (await client.get("/openapi.json")).status_code == 200
