"""The OpenAPI document's shared parts: the description and the Problem schema."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from coinpurse.core.errors import registered


def description() -> str:
    return """
Wallets and a double-entry ledger for your app's users.

* **Internal API** (`/internal/v1`, header `X-API-Key`): credit, debit and transfer money,
  read any balance and the audit history. Every POST needs an `Idempotency-Key` header.
* **User API** (`/api/v1`, `Authorization: Bearer <jwt>`, or a browser's session cookie from
  `POST /api/v1/auth/session` with `X-CSRF-Token`): the caller's balances and history.
* **Web wallet** at `/wallet` and **admin console** at `/console`, built on these same routes.

Amounts are JSON integers in minor units. Errors are `application/problem+json` with a
stable `code`: """ + ", ".join(f"`{e.code}`" for e in registered()) + "."


def add_problem_schema(app: FastAPI) -> None:
    """Declare the Problem schema the routes' ``responses=`` refer to."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = {
            "type": "object",
            "description": "RFC 9457 problem details with a stable `code`.",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "code": {"type": "string", "enum": sorted({e.code for e in registered()})},
                "errors": {"type": "array", "items": {"type": "object"},
                           "description": "Field errors, for validation_error."},
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
