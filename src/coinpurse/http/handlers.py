"""Every failure answers as RFC 9457 problem+json with a stable code: ours, FastAPI's
validation errors, Starlette's own HTTP errors, a database outage (503), and (as 500)
anything unexpected."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from coinpurse.core.cluster import faults
from coinpurse.core.errors import (
    CoinpurseError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from coinpurse.http.responses import problem_response

log = logging.getLogger("coinpurse")
# A database outage (a failover, a restart): reads and authentication go to the database
# directly (only the ledger retries by itself), so they meet a dropped or refused
# connection. The client gets 503 with Retry-After and retries; a money-moving call with
# the same idempotency key.
OUTAGE_RETRY_AFTER_S = 1


def _validation_problem(exc: RequestValidationError) -> ValidationFailed:
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        errors.append({
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        })
    if any(e["type"] == "json_invalid" for e in errors):
        return ValidationFailed("the request body is not valid JSON", errors)
    fields = ", ".join(".".join(e["loc"][1:]) or e["loc"][0] for e in errors[:5] if e["loc"])
    return ValidationFailed(f"invalid request: {fields}", errors)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CoinpurseError)
    async def _coinpurse(_r: Request, exc: CoinpurseError) -> Response:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> Response:
        return problem_response(_validation_problem(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> Response:
        """Starlette's own errors, in our problem format with our stable codes."""
        err: CoinpurseError
        if exc.status_code == 404:
            err = NotFound("no such route")
        elif exc.status_code == 405:
            err = MethodNotAllowed("this route does not take that method")
        elif exc.status_code == 413:
            err = PayloadTooLarge(str(exc.detail))
        elif exc.status_code == 401:
            err = Unauthorized(str(exc.detail))
        elif exc.status_code == 403:
            err = Forbidden(str(exc.detail))
        elif exc.status_code < 500:
            err = ValidationFailed(f"the request could not be read: {exc.detail}")
        else:
            err = CoinpurseError("an unexpected error occurred")
        return problem_response(err, headers=exc.headers)  # e.g. Allow on a 405

    async def _database_fault(_r: Request, exc: Exception) -> Response:
        if faults.is_transient(exc):
            log.warning("database unavailable: %r", exc)
            return problem_response(
                ServiceUnavailable("the database is unavailable (a failover or a restart); "
                                   "retry shortly, with the same idempotency key"),
                headers={"Retry-After": str(OUTAGE_RETRY_AFTER_S)})
        log.exception("unhandled error", exc_info=exc)
        return problem_response(CoinpurseError("an unexpected error occurred"))

    app.add_exception_handler(sa_exc.DBAPIError, _database_fault)
    app.add_exception_handler(OSError, _database_fault)

    @app.exception_handler(Exception)
    async def _unexpected(_r: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(CoinpurseError("an unexpected error occurred"))
