"""Fast JSON responses: routes build bytes with orjson and skip response-model revalidation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

from coinpurse.errors import PROBLEM_CONTENT_TYPE, CoinpurseError


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


def raw_json_response(
    body: bytes, status: int, headers: dict[str, str] | None = None
) -> Response:
    media = PROBLEM_CONTENT_TYPE if status >= 400 else "application/json"
    return Response(body, status_code=status, media_type=media, headers=headers)


def problem_response(
    err: CoinpurseError, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(err.problem_bytes(), status_code=err.status,
                    media_type=PROBLEM_CONTENT_TYPE, headers={**err.headers, **(headers or {})})
