"""The HTTP edge during a database outage: 503 ``service_unavailable``, never a 500.

Reads and authentication go to the database directly (only the ledger retries by itself),
so while the primary fails over they meet a dropped or refused connection. The client gets
503 with ``Retry-After`` and retries; a money-moving call retries with the same
idempotency key.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from sqlalchemy import exc as sa_exc
from starlette.responses import Response

from coinpurse.cluster import faults
from coinpurse.errors import CoinpurseError, ServiceUnavailable
from coinpurse.kit.http import problem_response

log = logging.getLogger("coinpurse")
RETRY_AFTER_S = 1


def install_fault_handlers(app: FastAPI) -> None:
    async def database_fault(_r: Request, exc: Exception) -> Response:
        if faults.is_transient(exc):
            log.warning("database unavailable: %r", exc)
            return problem_response(
                ServiceUnavailable("the database is unavailable (a failover or a restart); "
                                   "retry shortly, with the same idempotency key"),
                headers={"Retry-After": str(RETRY_AFTER_S)})
        log.exception("unhandled error", exc_info=exc)
        return problem_response(CoinpurseError("an unexpected error occurred"))

    app.add_exception_handler(sa_exc.DBAPIError, database_fault)
    app.add_exception_handler(OSError, database_fault)
