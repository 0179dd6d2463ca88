"""The OpenAPI document describes every API route: its answer and its problem codes."""

from __future__ import annotations

from coinpurse.app import create_app
from coinpurse.config import Settings
from coinpurse.core.errors import registered

API_PREFIXES = ("/internal/", "/api/", "/admin/")


def test_every_api_route_documents_its_answer_and_problems() -> None:
    doc = create_app(Settings(jwt_secret="x" * 40)).openapi()  # type: ignore[arg-type]
    codes = {e.code for e in registered()}
    assert set(doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]) == codes
    missing: list[str] = []
    for path, ops in doc["paths"].items():
        if not path.startswith(API_PREFIXES):
            continue
        for method, op in ops.items():
            name = f"{method.upper()} {path}"
            responses = op["responses"]
            success = [c for c in responses if c.startswith("2")]
            if not success:
                missing.append(f"{name}: no success answer")
            for c in success:
                content = responses[c].get("content", {})  # JSON, or e.g. text/csv
                if c != "204" and not any("schema" in v for v in content.values()):
                    missing.append(f"{name}: {c} has no schema")
            problems = [c for c in responses if c[0] in "45"]
            if not problems:
                missing.append(f"{name}: no problem responses")
            if not op.get("summary"):
                missing.append(f"{name}: no summary")
    assert missing == []
