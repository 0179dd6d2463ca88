"""Fast JSON responses (routes render bytes themselves and skip response-model
revalidation), problem+json responses, and their OpenAPI declarations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

from coinpurse.core.errors import PROBLEM_CONTENT_TYPE, CoinpurseError
from coinpurse.ledger.service import JobResult


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


def model_response(model: BaseModel, status: int = 200) -> Response:
    """An answer rendered from its schema model: serialized once, not validated again."""
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def raw_json_response(
    body: bytes, status: int, headers: dict[str, str] | None = None
) -> Response:
    media = PROBLEM_CONTENT_TYPE if status >= 400 else "application/json"
    return Response(body, status_code=status, media_type=media, headers=headers)


def replay_response(result: JobResult) -> Response:
    """A ledger job's stored answer; marked when it is the replay of an earlier request."""
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return raw_json_response(result.response.body, result.response.status, headers)


def problem_response(
    err: CoinpurseError, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(err.problem_bytes(), status_code=err.status,
                    media_type=PROBLEM_CONTENT_TYPE, headers={**err.headers, **(headers or {})})


def problems(*errors: type[CoinpurseError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the problem codes a route can answer with."""
    by_status: dict[int, list[type[CoinpurseError]]] = {}
    for err in errors:
        by_status.setdefault(err.status, []).append(err)
    return {
        status: {
            "description": " / ".join(f"`{e.code}`: {e.title}" for e in errs),
            "content": {
                "application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "examples": {
                        e.code: {"value": e(e.title).problem()} for e in errs
                    },
                }
            },
        }
        for status, errs in sorted(by_status.items())
    }
