"""The OpenAPI document's shared parts: the description, operation ids, the Problem schema,
and what every operation has in common (problem+json 422s, the headers), added in one place
so that each domain's routes only say what is theirs."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from coinpurse.core.errors import ValidationFailed, registered

# Response headers, declared once under components.headers.
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id: yours if you sent a valid `X-Request-ID` (1-128 of "
                       "letters, digits, `._:-`), else one made for it. It is in every log "
                       "line of the request and in problem bodies (`request_id`).",
        "schema": {"type": "string", "maxLength": 128}},
    "Idempotent-Replayed": {
        "description": "`true` when this answer is the stored answer of an earlier request "
                       "with the same `Idempotency-Key` (nothing was done again).",
        "schema": {"type": "string", "enum": ["true"]}},
    "Retry-After": {
        "description": "Seconds to wait before retrying (with the same idempotency key).",
        "schema": {"type": "integer", "format": "int32", "minimum": 1}},
    "RateLimit-Limit": {
        "description": "Requests allowed in the window of the tightest limit this request "
                       "passed (per user, per service key, per client address).",
        "schema": {"type": "integer", "format": "int64"}},
    "RateLimit-Remaining": {
        "description": "Requests left in that window.",
        "schema": {"type": "integer", "format": "int64"}},
    "RateLimit-Reset": {
        "description": "Seconds until the window frees a request.",
        "schema": {"type": "integer", "format": "int64"}},
    "RateLimit-Policy": {
        "description": "The limit and its window, e.g. `1200;w=60`.",
        "schema": {"type": "string"}},
}
RATE_LIMITED_PREFIXES = ("/api/", "/admin/")


def description() -> str:
    return """
Wallets and a double-entry ledger for your app's users.

* **Internal API** (`/internal/v1`, header `X-API-Key`): credit, debit and transfer money,
  read any balance and the audit history. Every POST that moves money needs an
  `Idempotency-Key` header; a retry with the same key replays the first answer (with
  `Idempotent-Replayed: true`).
* **User API** (`/api/v1`, `Authorization: Bearer <jwt>`, or a browser's session cookie from
  `POST /api/v1/auth/session` with `X-CSRF-Token`): the caller's balances and history.
* **Admin API** (`/admin/v1`, admin or auditor tokens).
* **Web wallet** at `/wallet` and **admin console** at `/console`, built on these same routes.

Amounts are JSON integers in minor units (64-bit signed: never floats), with their
`currency` beside them. Every answer carries `X-Request-ID`. Limited routes answer with
`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and `RateLimit-Policy`; a 429
or a 503 carries `Retry-After`. Errors are `application/problem+json` with a stable
`code`: """ + ", ".join(f"`{c}`" for c in sorted({e.code for e in registered()})) + "."


def _stem(domain: str) -> str:
    if domain.endswith("ses"):
        return domain[:-2]
    return domain[:-1] if domain.endswith("s") else domain


def operation_id(route: APIRoute) -> str:
    """``<domain>_<function>`` (``wallet_credit``, ``hold_capture``): short, stable names
    for generated clients; the function's name alone when it already names the domain
    (``send_gift``, ``request_withdrawal``)."""
    parts = route.endpoint.__module__.split(".")
    if len(parts) < 3:
        return route.name
    stem = _stem(parts[1])
    return route.name if stem in route.name else f"{stem}_{route.name}"


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details with a stable `code`.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "format": "int32"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": "string",
                       "description": "The request's `X-Request-ID`, to find its log lines."},
        "errors": {"type": "array", "description": "Field errors, for validation_error.",
                   "items": {"type": "object", "properties": {
                       "loc": {"type": "array", "items": {"type": "string"}},
                       "msg": {"type": "string"},
                       "type": {"type": "string"}}}},
    },
}


def _validation_response() -> dict[str, Any]:
    example = ValidationFailed("invalid request: amount", [
        {"loc": ["body", "amount"], "msg": "Input should be greater than 0",
         "type": "greater_than"}]).problem()
    return {
        "description": "`validation_error`: the request is not valid (`errors` lists the "
                       "fields)",
        "content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"},
            "examples": {"validation_error": {"value": example}}}},
    }


def _header_refs(*names: str) -> dict[str, Any]:
    return {n: {"$ref": f"#/components/headers/{n}"} for n in names}


def _int64(schema: Any) -> None:
    """Every integer is a 64-bit integer (amounts above all): generated clients must not
    read them as 32-bit numbers or floats."""
    if isinstance(schema, dict):
        if schema.get("type") == "integer" and "format" not in schema:
            schema["format"] = "int64"
        for value in schema.values():
            _int64(value)
    elif isinstance(schema, list):
        for value in schema:
            _int64(value)


def _complete(doc: dict[str, Any]) -> None:
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem = {**PROBLEM_SCHEMA}
    problem["properties"] = {**PROBLEM_SCHEMA["properties"], "code": {
        "type": "string", "enum": sorted({e.code for e in registered()})}}
    schemas["Problem"] = problem
    components["headers"] = HEADERS
    for path, operations in doc.get("paths", {}).items():
        for op in operations.values():
            responses = op.setdefault("responses", {})
            params = op.get("parameters", [])
            takes_input = bool(params) or "requestBody" in op
            if "422" in responses or takes_input:
                ours = responses.get("422", {}).get("content", {}).get(
                    "application/problem+json")
                if ours is None:
                    responses["422"] = _validation_response()
                else:
                    ours.setdefault("examples", {}).setdefault(
                        "validation_error",
                        _validation_response()["content"]["application/problem+json"][
                            "examples"]["validation_error"])
                    responses["422"].pop("content", None)
                    responses["422"]["content"] = {"application/problem+json": ours}
            idempotent = any(p.get("in") == "header" and p.get("name") == "idempotency-key"
                             for p in params)
            limited = path.startswith(RATE_LIMITED_PREFIXES)
            for status, response in responses.items():
                headers = response.setdefault("headers", {})
                headers.update(_header_refs("X-Request-ID"))
                if idempotent and status.startswith("2"):
                    headers.update(_header_refs("Idempotent-Replayed"))
                if status in ("429", "503"):
                    headers.update(_header_refs("Retry-After"))
                if limited:
                    headers.update(_header_refs("RateLimit-Limit", "RateLimit-Remaining",
                                                "RateLimit-Reset", "RateLimit-Policy"))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    _int64(schemas)
    for operations in doc.get("paths", {}).values():
        for op in operations.values():
            _int64(op.get("parameters", []))


def add_problem_schema(app: FastAPI) -> None:
    """Finish the document: the Problem schema the routes' ``responses=`` refer to, 422s
    as problem+json, the common headers, 64-bit integers."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        _complete(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
