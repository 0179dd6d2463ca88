"""Probes and metrics for the platform that runs Coinpurse: ``/healthz``, ``/readyz``,
``/metrics``."""

from __future__ import annotations

import hmac
import os
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request
from starlette.responses import Response

from coinpurse import __version__
from coinpurse.core import metrics
from coinpurse.core.errors import NotFound, Unauthorized
from coinpurse.http.deps import State
from coinpurse.http.responses import json_response, problems
from coinpurse.ops import service
from coinpurse.ops.errors import NotReady
from coinpurse.ops.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut, operation_id="ops_health",
            summary="Liveness: the process answers",
            description="Always 200 while the process runs; it touches nothing else. Use "
                        "`/readyz` to decide whether to send traffic.")
async def healthz() -> Response:
    return json_response({"status": "ok", "version": __version__, "pid": os.getpid()})


@router.get("/readyz", response_model=ReadyOut, operation_id="ops_ready",
            summary="Readiness: database, migrations, background jobs",
            description="200 when the database answers, is at the migration this code "
                        "needs, and every background job of this process runs. Otherwise "
                        "503 `not_ready` with `checks` naming what is wrong (also while "
                        "the process drains on shutdown).",
            responses=problems(NotReady))
async def readyz(request: Request, state: State) -> Response:
    runner = getattr(request.app.state, "jobs", None)
    ready = await service.readiness(
        state.db, runner.status if runner is not None else {},
        draining=getattr(request.app.state, "draining", False))
    if not ready.ok:
        raise NotReady("; ".join(ready.reasons), checks=ready.checks)
    return json_response({"status": "ready", "checks": ready.checks})


@router.get("/metrics", operation_id="ops_metrics",
            summary="Prometheus metrics (needs COINPURSE_METRICS_TOKEN)",
            description="The Prometheus text format, added up over every server process. "
                        "Served here only when `COINPURSE_METRICS_TOKEN` is set, to callers "
                        "sending `Authorization: Bearer <that token>`; else use "
                        "`coinpurse serve --metrics-port`.",
            responses={200: {"description": "Prometheus exposition format",
                             "content": {"text/plain": {"schema": {"type": "string"}}}},
                       **problems(Unauthorized, NotFound)})
async def metrics_route(
    state: State,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    token = state.settings.metrics_token
    if token is None:
        raise NotFound("metrics are not served on this port: set COINPURSE_METRICS_TOKEN "
                       "or use coinpurse serve --metrics-port")
    expected = f"Bearer {token.get_secret_value()}".encode()
    if not hmac.compare_digest((authorization or "").encode(), expected):
        raise Unauthorized("send the metrics token as Authorization: Bearer <token>")
    service.sample_process(state.db, state.ledger, state.reads.standby, state.ledger_db)
    body = await anyio.to_thread.run_sync(metrics.render)
    return Response(body, media_type=metrics.CONTENT_TYPE)
