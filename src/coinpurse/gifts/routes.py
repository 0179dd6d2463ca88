"""Gifts (user API) and agency membership (internal API)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from coinpurse.auth.accounts import get_user
from coinpurse.core import cursor
from coinpurse.core.errors import Forbidden, Unauthorized, ValidationFailed
from coinpurse.core.types import USER_ID_RE
from coinpurse.gifts import schemas as s
from coinpurse.gifts.service import (
    GiftRefused,
    agency_of,
    gift_side_writes,
    list_gifts,
    plan_gift,
    render_gift,
    set_agency,
)
from coinpurse.http.deps import IdempotencyKey, Service, State, UserId
from coinpurse.http.responses import json_response, problems, raw_json_response
from coinpurse.ledger import queries
from coinpurse.ledger.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientFunds,
    UnknownCurrency,
)
from coinpurse.ledger.idempotency import claim

router = APIRouter(tags=["gifts"])


@router.get("/api/v1/gifts/catalog", response_model=s.CatalogOut,
            responses=problems(Unauthorized), summary="Gift types and their prices")
async def catalog(user_id: UserId, state: State) -> Response:
    """The gift types of `COINPURSE_GIFT_CATALOG`, each with its price and currency, as `POST
    /api/v1/gifts` accepts them in `gift_type`."""
    return json_response({"data": [
        {"gift_type": g.code, "price": g.price, "currency": g.currency}
        for g in state.settings.gift_types.values()
    ]})


@router.post("/api/v1/gifts", status_code=201, response_model=s.SentGiftOut,
             responses=problems(ValidationFailed, Unauthorized, UnknownCurrency,
                                InsufficientFunds, IdempotencyKeyReused, IdempotencyKeyInUse),
             summary="Send a gift to another user")
async def send_gift(body: s.GiftIn, user_id: UserId, state: State,
                    idem: IdempotencyKey) -> Response:
    """One transaction moves the gift from the caller to the receiver, the receiver's agency
    (if any) and the platform fee account. Shares are in basis points
    (`COINPURSE_GIFT_PLATFORM_BPS`, `COINPURSE_GIFT_AGENCY_BPS`); each commission is rounded
    down and the receiver gets the remainder, so no unit is made or lost. The
    `Idempotency-Key` is scoped to the caller. Refusals that can never succeed are 422
    `validation_error` with a `reason`: `self_gift`, `unknown_gift_type`,
    `currency_mismatch`, `currency_not_giftable`, `amount_not_allowed`, and with built-in
    accounts `unknown_recipient`."""
    if body.currency is not None:
        state.settings.currency(body.currency)
    async with state.db.connect() as conn:
        agency = await agency_of(conn, body.to_user_id)
        if state.settings.auth == "builtin" and await get_user(conn, body.to_user_id) is None:
            raise GiftRefused("unknown_recipient", f"there is no user {body.to_user_id!r}")
    plan = plan_gift(state.settings, user_id, to_user_id=body.to_user_id,
                     gift_type=body.gift_type, amount=body.amount, currency=body.currency,
                     message=body.message, context_id=body.context_id, agency_id=agency)
    result = await state.ledger.submit(
        [plan.spec(state.settings.platform_fee_address)], render=render_gift(plan),
        claim=claim(f"user:{user_id}", idem, "gift", body.model_dump(mode="json")),
        side_writes=gift_side_writes(plan),
    )
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return raw_json_response(result.response.body, result.response.status, headers)


@router.get("/api/v1/gifts", response_model=s.GiftPage,
            responses=problems(ValidationFailed, Unauthorized),
            summary="The caller's gifts, sent or received, newest first")
async def my_gifts(
    user_id: UserId,
    state: State,
    direction: Literal["sent", "received"] = "sent",
    limit: Annotated[int, Query(ge=1, le=queries.PAGE_MAX)] = 50,
    cursor_: Annotated[str | None, Query(alias="cursor", max_length=96)] = None,
) -> Response:
    """Gifts the caller sent (`direction=sent`, the default) or received, newest first, with
    cursor pages (`limit`, `cursor` -> `next_cursor`)."""
    data, next_id = await list_gifts(state.db, user_id, direction=direction,
                                     before=cursor.decode_text(cursor_), limit=limit)
    return json_response({"data": data,
                          "next_cursor": cursor.encode_text(next_id) if next_id else None})


@router.put("/internal/v1/users/{user_id}/agency", response_model=s.AgencyOut,
            responses=problems(ValidationFailed, Unauthorized, Forbidden),
            tags=["internal"], summary="Set or clear a user's agency")
async def put_agency(
    user_id: Annotated[str, Path(pattern=USER_ID_RE)], body: s.AgencyIn, state: State,
    key: Service,
) -> Response:
    """Gifts to this user then pay the agency's commission to `agency:<agency_id>`.
    Scope `users:write`."""
    key.require("users:write")
    await set_agency(state.db, user_id, body.agency_id)
    return json_response({"user_id": user_id, "agency_id": body.agency_id})


@router.get("/internal/v1/users/{user_id}/agency", response_model=s.AgencyOut,
            responses=problems(Unauthorized, Forbidden), tags=["internal"],
            summary="A user's agency")
async def get_agency(user_id: Annotated[str, Path(pattern=USER_ID_RE)], state: State,
                     key: Service) -> Response:
    """The agency that earns a commission on the gifts this user receives, or `null`. Scope
    `wallet:read`."""
    key.require("wallet:read")
    async with state.db.connect() as conn:
        agency = await agency_of(conn, user_id)
    return json_response({"user_id": user_id, "agency_id": agency})
