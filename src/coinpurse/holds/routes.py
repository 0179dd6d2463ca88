"""Holds over the internal API: reserve, capture, void, read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from coinpurse.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from coinpurse.core.ids import new_id
from coinpurse.holds import schemas as s
from coinpurse.holds.service import get_hold, hold_view, render_hold
from coinpurse.http.deps import IdempotencyKey, Service, State
from coinpurse.http.responses import json_response, problems, raw_json_response
from coinpurse.ledger.errors import (
    CaptureExceedsHold,
    HoldNotOpen,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientFunds,
    UnknownCurrency,
)
from coinpurse.ledger.idempotency import claim
from coinpurse.ledger.model import CaptureHold, Operation, PlaceHold, ReleaseHold

router = APIRouter(prefix="/internal/v1/holds", tags=["holds"])
HoldId = Annotated[str, Path(max_length=64, description="The hold's id.")]
_BASE_ERRORS = (ValidationFailed, Unauthorized, Forbidden, IdempotencyKeyReused,
                IdempotencyKeyInUse)


async def _submit(state: State, key: Service, idem: str, op: Operation, name: str,
                  payload: object, status: int) -> Response:
    result = await state.ledger.submit(
        [op], render=render_hold(status),
        claim=claim(f"service:{key.service}", idem, name, payload),
    )
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return raw_json_response(result.response.body, result.response.status, headers)


@router.post("", status_code=201, response_model=s.HoldOut,
             responses=problems(*_BASE_ERRORS, UnknownCurrency, InsufficientFunds),
             summary="Reserve part of a user's available balance")
async def place(body: s.HoldIn, state: State, key: Service, idem: IdempotencyKey) -> Response:
    """The amount leaves `available` (not `balance`) until the hold is captured, voided or
    expires (`expires_in_s`, default 900). Scope `holds:write:<currency>`."""
    currency = state.settings.currency(body.currency)
    key.require(f"holds:write:{currency}")
    op = PlaceHold(
        hold_id=new_id(), address=f"user:{body.user_id}", currency=currency,
        amount=body.amount, destination=body.destination or f"service:{key.service}",
        description=body.description, reference_id=body.reference_id, service=key.service,
        expires_at=datetime.now(UTC) + timedelta(seconds=body.expires_in_s), kind=body.kind,
        metadata=body.metadata,
    )
    # The hold id and expiry are decided here, so hash only what the caller sent.
    return await _submit(state, key, idem, op, "hold", body.model_dump(mode="json"), 201)


@router.post("/{hold_id}/capture", response_model=s.HoldOut,
             responses=problems(*_BASE_ERRORS, NotFound, HoldNotOpen, CaptureExceedsHold),
             summary="Move all or part of a hold to its destination")
async def capture(hold_id: HoldId, state: State, key: Service, idem: IdempotencyKey,
                  body: s.CaptureIn | None = None) -> Response:
    """One ledger transaction moves `amount` (default: all) to the destination; the rest is
    released. A hold that is not open (captured, voided, expired — also one past its expiry
    that the sweeper has not reached yet) answers 409 `hold_not_open`."""
    await _require_hold_scope(state, key, hold_id)
    amount = body.amount if body else None
    op = CaptureHold(hold_id=hold_id, service=key.service, amount=amount)
    return await _submit(state, key, idem, op, f"capture:{hold_id}", {"amount": amount}, 200)


@router.post("/{hold_id}/void", response_model=s.HoldOut,
             responses=problems(*_BASE_ERRORS, NotFound, HoldNotOpen),
             summary="Release a hold without moving money")
async def void(hold_id: HoldId, state: State, key: Service, idem: IdempotencyKey) -> Response:
    """Releases the whole hold: nothing moves, the amount is available again. Only the service
    that placed the hold may void it; a captured, voided or expired hold answers 409
    `hold_not_open`. Needs an `Idempotency-Key`."""
    await _require_hold_scope(state, key, hold_id)
    op = ReleaseHold(hold_id=hold_id, service=key.service, status="voided")
    return await _submit(state, key, idem, op, f"void:{hold_id}", {}, 200)


@router.get("/{hold_id}", response_model=s.HoldOut,
            responses=problems(Unauthorized, Forbidden, NotFound), summary="A hold")
async def read(hold_id: HoldId, state: State, key: Service) -> Response:
    """Only the service that placed a hold sees it. Scope `holds:read` or `wallet:read`."""
    if not (key.allows("holds:read") or key.allows("wallet:read")):
        raise Forbidden("this key lacks the scope 'holds:read'", required_scope="holds:read")
    hold = await get_hold(state.db, hold_id)
    if hold is None or hold.service != key.service:
        raise NotFound(f"no hold {hold_id!r}")
    return json_response(hold_view(hold))


async def _require_hold_scope(state: State, key: Service, hold_id: str) -> None:
    """``holds:write:<currency>`` of the hold's currency. Another service's hold is
    ``not_found``; the ledger checks both again under the hold's row lock."""
    hold = await get_hold(state.db, hold_id)
    if hold is None or hold.service != key.service:
        raise NotFound(f"no hold {hold_id!r}")
    key.require(f"holds:write:{hold.currency}")
