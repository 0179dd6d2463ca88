"""Holds over the internal API: reserve, capture, void, read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from coinpurse.bonuses.errors import BonusWalletReserved
from coinpurse.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from coinpurse.holds import schemas as s
from coinpurse.holds.service import Holds
from coinpurse.http.deps import IdempotencyKey, Service, State
from coinpurse.http.responses import problems, raw_json_response, replay_response
from coinpurse.ledger.errors import (
    CaptureExceedsHold,
    HoldNotOpen,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientFunds,
    UnknownCurrency,
)

router = APIRouter(prefix="/internal/v1/holds", tags=["holds"])
HoldId = Annotated[str, Path(max_length=64, description="The hold's id.")]
_BASE_ERRORS = (ValidationFailed, Unauthorized, Forbidden, IdempotencyKeyReused,
                IdempotencyKeyInUse)


def _holds(state: State) -> Holds:
    return Holds(state.db, state.ledger)


@router.post("", status_code=201, response_model=s.HoldOut,
             responses=problems(*_BASE_ERRORS, UnknownCurrency, InsufficientFunds,
                                BonusWalletReserved),
             summary="Reserve part of a user's available balance")
async def place(body: s.HoldIn, state: State, key: Service, idem: IdempotencyKey) -> Response:
    """The amount leaves `available` (not `balance`) until the hold is captured, voided or
    expires (`expires_in_s`, default 900). Scope `holds:write:<currency>`. A hold reserves
    the user's cash wallet only, never bonus money (`insufficient_funds` when cash alone
    falls short): a hold may wait days to be captured, while a bonus converts, expires
    or is forfeited in the meantime."""
    currency = state.settings.currency(body.currency)
    key.require(f"holds:write:{currency}")
    return replay_response(await _holds(state).place(key.service, body, idem))


@router.post("/{hold_id}/capture", response_model=s.HoldOut,
             responses=problems(*_BASE_ERRORS, NotFound, HoldNotOpen, CaptureExceedsHold),
             summary="Move all or part of a hold to its destination")
async def capture(hold_id: HoldId, state: State, key: Service, idem: IdempotencyKey,
                  body: s.CaptureIn | None = None) -> Response:
    """One ledger transaction moves `amount` (default: all) to the destination; the rest is
    released. A hold that is not open (captured, voided, expired — also one past its expiry
    that the sweeper has not reached yet) answers 409 `hold_not_open`."""
    holds = _holds(state)
    await _require_write_scope(holds, key, hold_id)
    amount = body.amount if body else None
    return replay_response(await holds.capture(key.service, hold_id, amount, idem))


@router.post("/{hold_id}/void", response_model=s.HoldOut,
             responses=problems(*_BASE_ERRORS, NotFound, HoldNotOpen),
             summary="Release a hold without moving money")
async def void(hold_id: HoldId, state: State, key: Service, idem: IdempotencyKey) -> Response:
    """Releases the whole hold: nothing moves, the amount is available again. Only the service
    that placed the hold may void it; a captured, voided or expired hold answers 409
    `hold_not_open`. Needs an `Idempotency-Key`."""
    holds = _holds(state)
    await _require_write_scope(holds, key, hold_id)
    return replay_response(await holds.void(key.service, hold_id, idem))


@router.get("/{hold_id}", response_model=s.HoldOut,
            responses=problems(Unauthorized, Forbidden, NotFound), summary="A hold")
async def read(hold_id: HoldId, state: State, key: Service) -> Response:
    """Only the service that placed a hold sees it. Scope `holds:read` or `wallet:read`."""
    if not (key.allows("holds:read") or key.allows("wallet:read")):
        raise Forbidden("this key lacks the scope 'holds:read'", required_scope="holds:read")
    hold = await _holds(state).get(key.service, hold_id)
    return raw_json_response(s.HoldOut.of(hold).answer(), 200)


async def _require_write_scope(holds: Holds, key: Service, hold_id: str) -> None:
    """``holds:write:<currency>`` of the hold's currency. Another service's hold is
    ``not_found``; the ledger checks both again under the hold's row lock."""
    hold = await holds.get(key.service, hold_id)
    key.require(f"holds:write:{hold.currency}")
