"""The event log for services: ``GET /internal/v1/events`` with a cursor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from coinpurse.core import cursor
from coinpurse.core.errors import Forbidden, Unauthorized, ValidationFailed
from coinpurse.events import schemas as s
from coinpurse.events import service
from coinpurse.http.deps import Service, State
from coinpurse.http.responses import json_response, problems

router = APIRouter(prefix="/internal/v1", tags=["events"])
PAGE_MAX = 1000


@router.get("/events", response_model=s.EventPage,
            responses=problems(ValidationFailed, Unauthorized, Forbidden),
            summary="The event log, oldest first, from a cursor")
async def events(
    state: State, key: Service,
    after: Annotated[str | None, Query(max_length=96, description=(
        "The `next_cursor` of the previous page; omit it to start at the oldest event "
        "kept."))] = None,
    types: Annotated[str | None, Query(max_length=2048, description=(
        "Comma-separated event types or patterns, e.g. `transaction.posted,topup.*`."))
    ] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
) -> Response:
    """Every committed change's events in one order that never changes: a reader that
    follows `next_cursor` sees each event exactly once, with several writing processes too.
    Scope `events:read`. Events are kept `COINPURSE_EVENTS_RETENTION_DAYS` (30 days)."""
    key.require("events:read")
    found, last = await service.page(state.db, after=cursor.decode(after) or 0, limit=limit,
                                     types=service.TypeFilter.parse(types))
    return json_response({"data": [s.EventOut.of(e).model_dump() for e in found],
                          "next_cursor": cursor.encode(last)})
