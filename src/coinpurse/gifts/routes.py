"""Gifts (user API) and agency membership (internal API)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from coinpurse.core.errors import Forbidden, Unauthorized, ValidationFailed
from coinpurse.core.pages import PAGE_MAX
from coinpurse.core.types import USER_ID_RE
from coinpurse.gifts import schemas as s
from coinpurse.gifts.service import Gifts
from coinpurse.http.deps import IdempotencyKey, Service, State, UserId
from coinpurse.http.responses import model_response, problems, replay_response
from coinpurse.ledger.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientFunds,
    UnknownCurrency,
)

router = APIRouter(tags=["gifts"])
UserPath = Annotated[str, Path(pattern=USER_ID_RE)]


def _gifts(state: State) -> Gifts:
    return Gifts(state.db, state.ledger, state.settings,
                 builtin_accounts=state.settings.auth == "builtin")


@router.get("/api/v1/gifts/catalog", response_model=s.CatalogOut,
            responses=problems(Unauthorized), summary="Gift types and their prices")
async def catalog(user_id: UserId, state: State) -> Response:
    """The gift types of `COINPURSE_GIFT_CATALOG`, each with its price and currency, as `POST
    /api/v1/gifts` accepts them in `gift_type`."""
    return model_response(s.CatalogOut.of(_gifts(state).catalog()))


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
    return replay_response(await _gifts(state).send(user_id, body, idem))


@router.post("/api/v1/gifts/quote", response_model=s.GiftQuoteOut,
             responses=problems(ValidationFailed, Unauthorized, UnknownCurrency),
             summary="The split of a gift, without sending it")
async def quote_gift(body: s.GiftIn, user_id: UserId, state: State) -> Response:
    """Takes the body of `POST /api/v1/gifts` and answers the split it would make now: what
    the receiver, their agency and the platform would get, so a page can ask the giver to
    confirm. The same refusals (`validation_error` with a `reason`); nothing is stored or
    moved, and the balance is checked only when the gift is sent."""
    plan = await _gifts(state).quote(user_id, body)
    return model_response(s.GiftQuoteOut(
        to_user_id=plan.receiver, gift_type=plan.gift_type, currency=plan.currency,
        amount=plan.amount, receiver_amount=plan.split.receiver,
        agency_commission=plan.split.agency, platform_fee=plan.split.platform))


@router.get("/api/v1/gifts", response_model=s.GiftPage,
            responses=problems(ValidationFailed, Unauthorized),
            summary="The caller's gifts, sent or received, newest first")
async def my_gifts(
    user_id: UserId,
    state: State,
    direction: Literal["sent", "received"] = "sent",
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    cursor_: Annotated[str | None, Query(alias="cursor", max_length=96)] = None,
) -> Response:
    """Gifts the caller sent (`direction=sent`, the default) or received, newest first, with
    cursor pages (`limit`, `cursor` -> `next_cursor`)."""
    page = await _gifts(state).page(user_id, direction=direction, cursor_text=cursor_,
                                    limit=limit)
    return model_response(s.GiftPage.of(page))


@router.put("/internal/v1/users/{user_id}/agency", response_model=s.AgencyOut,
            responses=problems(ValidationFailed, Unauthorized, Forbidden),
            tags=["internal"], summary="Set or clear a user's agency")
async def put_agency(user_id: UserPath, body: s.AgencyIn, state: State,
                     key: Service) -> Response:
    """Gifts to this user then pay the agency's commission to `agency:<agency_id>`.
    Scope `users:write`."""
    key.require("users:write")
    await _gifts(state).set_agency(user_id, body.agency_id)
    return model_response(s.AgencyOut(user_id=user_id, agency_id=body.agency_id))


@router.get("/internal/v1/users/{user_id}/agency", response_model=s.AgencyOut,
            responses=problems(Unauthorized, Forbidden), tags=["internal"],
            summary="A user's agency")
async def get_agency(user_id: UserPath, state: State, key: Service) -> Response:
    """The agency that earns a commission on the gifts this user receives, or `null`. Scope
    `wallet:read`."""
    key.require("wallet:read")
    agency = await _gifts(state).agency(user_id)
    return model_response(s.AgencyOut(user_id=user_id, agency_id=agency))
