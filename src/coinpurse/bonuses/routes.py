"""Bonuses over HTTP: a user's bonuses and code claims (``/api/v1``), grants, activity and
referrals for services (``/internal/v1``), promotions and bonuses for operators
(``/admin/v1``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from coinpurse.bonuses import schemas as s
from coinpurse.bonuses.errors import (
    AlreadyReferred,
    BonusNotActive,
    InvalidPromoCode,
    PromotionBudgetExhausted,
    PromotionCodeTaken,
    PromotionLimitReached,
    SelfReferral,
)
from coinpurse.bonuses.model import BonusFilter, PromotionFilter
from coinpurse.bonuses.service import Bonuses
from coinpurse.core import audit
from coinpurse.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from coinpurse.core.pages import PAGE_MAX
from coinpurse.core.types import USER_ID_RE
from coinpurse.http.deps import (
    Admin,
    AdminWriter,
    IdempotencyKey,
    Service,
    State,
    UserId,
    client_ip,
)
from coinpurse.http.responses import model_response, problems, replay_response
from coinpurse.ledger.errors import IdempotencyKeyInUse, IdempotencyKeyReused, UnknownCurrency

user_router = APIRouter(prefix="/api/v1", tags=["bonuses"])
router = APIRouter(prefix="/internal/v1", tags=["bonuses"])
admin_router = APIRouter(prefix="/admin/v1", tags=["admin", "bonuses"])

IdPath = Annotated[str, Path(max_length=36, pattern=r"^[0-9a-f-]{1,36}$")]
UserPath = Annotated[str, Path(pattern=USER_ID_RE, description="The referee's user id.")]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX)]
Cursor = Annotated[str | None, Query(alias="cursor", max_length=96)]
Currency = Annotated[str | None, Query(max_length=16)]
StatusQuery = Annotated[s.Status | None, Query(description="active, completed, forfeited "
                                                           "or expired")]
_GRANT_ERRORS = (ValidationFailed, Unauthorized, Forbidden, InvalidPromoCode,
                 PromotionLimitReached, PromotionBudgetExhausted, IdempotencyKeyReused,
                 IdempotencyKeyInUse)


def _bonuses(state: State) -> Bonuses:
    return Bonuses(state.db, state.ledger, state.settings)


# ---------------------------------------------------------------- users


@user_router.get("/bonuses", response_model=s.BonusPage,
                 responses=problems(ValidationFailed, Unauthorized, UnknownCurrency),
                 summary="The caller's bonuses, newest first, with their wagering progress")
async def my_bonuses(user_id: UserId, state: State, status: StatusQuery = None,
                     currency: Currency = None, limit: Limit = 50,
                     cursor_: Cursor = None) -> Response:
    """`progress` says how much has been wagered of what is required (`percent`) and when
    the bonus expires. `remaining` is what is left of it in the bonus wallet."""
    page = await _bonuses(state).bonuses(BonusFilter(user_id=user_id, status=status,
                                                     currency=currency),
                                         cursor_text=cursor_, limit=limit)
    return model_response(s.BonusPage.model_validate({
        "data": [s.BonusOut.fields(x) for x in page.items], "next_cursor": page.next_cursor}))


@user_router.get("/bonuses/{bonus_id}", response_model=s.BonusOut,
                 responses=problems(ValidationFailed, Unauthorized, NotFound),
                 summary="One of the caller's bonuses")
async def my_bonus(bonus_id: IdPath, user_id: UserId, state: State) -> Response:
    """With its wagering `progress`; another user's bonus answers 404 like an unknown one."""
    return model_response(s.BonusOut.of(await _bonuses(state).bonus(bonus_id, user_id)))


@user_router.post("/bonuses/claim", status_code=201, response_model=s.BonusOut,
                  responses=problems(*_GRANT_ERRORS),
                  summary="Claim a promotion's code: its bonus, once (or as often as it allows)")
async def claim(body: s.ClaimIn, user_id: UserId, state: State,
                idem: IdempotencyKey) -> Response:
    """Only codes of `manual` promotions marked `claimable` can be claimed; the bonus lands
    in the bonus wallet and must be wagered before it converts to cash."""
    return replay_response(await _bonuses(state).claim(user_id, body.code, idem))


# ---------------------------------------------------------------- services


@router.post("/bonuses", status_code=201, response_model=s.AdminBonusOut,
             responses=problems(*_GRANT_ERRORS),
             summary="Grant a manual promotion's bonus to a user")
async def grant(body: s.GrantIn, state: State, key: Service, idem: IdempotencyKey) -> Response:
    """Scope `bonuses:grant`. The promotion must be a running `manual` one; its per-user
    limit and budget apply. `amount` defaults to the promotion's."""
    key.require("bonuses:grant")
    return replay_response(await _bonuses(state).grant(
        actor=f"service:{key.service}", scope=f"service:{key.service}", body=body, idem=idem))


@router.post("/bonuses/activity", response_model=s.ActivityOut,
             responses=problems(ValidationFailed, Unauthorized, Forbidden, UnknownCurrency,
                                IdempotencyKeyReused, IdempotencyKeyInUse),
             summary="Report activity settled elsewhere: it counts as wagering")
async def activity(body: s.ActivityIn, state: State, key: Service,
                   idem: IdempotencyKey) -> Response:
    """Scope `bonuses:activity`. `amount` times the category's weight (each promotion's
    `contributions`) counts toward the user's active bonuses of the currency, oldest first.
    A bonus whose requirement is met converts in the same commit: what remains of it moves
    to the cash wallet (at most `max_conversion`, the rest back to promotions), exactly
    once however many reports race."""
    key.require("bonuses:activity")
    return replay_response(await _bonuses(state).activity(key.service, body, idem))


@router.post("/referrals", status_code=201, response_model=s.ReferralOut,
             responses=problems(ValidationFailed, Unauthorized, Forbidden, SelfReferral,
                                AlreadyReferred),
             summary="Record who referred a user")
async def refer(body: s.ReferralIn, state: State, key: Service) -> Response:
    """Scope `referrals:write`. Once per referee (a second referrer: 409 `already_referred`;
    the same link again answers 200 with it). When the referee's first qualifying top-up
    succeeds, the running `referral` promotions pay both users, once."""
    key.require("referrals:write")
    found, created = await _bonuses(state).refer(key.service, body.referrer_user_id,
                                                 body.referee_user_id)
    return model_response(s.ReferralOut.of(found), 201 if created else 200)


@router.get("/referrals/{referee_user_id}", response_model=s.ReferralOut,
            responses=problems(ValidationFailed, Unauthorized, Forbidden, NotFound),
            summary="A user's referrer, and whether the referral has been rewarded")
async def referral(referee_user_id: UserPath, state: State, key: Service) -> Response:
    """Scope `referrals:read`."""
    key.require("referrals:read")
    return model_response(s.ReferralOut.of(await _bonuses(state).referral(referee_user_id)))


# ---------------------------------------------------------------- operators


@admin_router.post("/promotions", status_code=201, response_model=s.PromotionOut,
                   responses=problems(ValidationFailed, Unauthorized, Forbidden,
                                      UnknownCurrency, PromotionCodeTaken),
                   summary="Create a promotion")
async def create_promotion(body: s.PromotionIn, admin: AdminWriter, state: State,
                           request: Request) -> Response:
    """`deposit_match` needs `percent_bp` (and may cap it with `max_bonus`); `signup`,
    `referral` and `manual` need `amount`. Audited."""
    promo = await _bonuses(state).create_promotion(admin, body, client_ip(request))
    return model_response(s.PromotionOut.of(promo), 201)


@admin_router.get("/promotions", response_model=s.PromotionPage,
                  responses=problems(ValidationFailed, Unauthorized, Forbidden,
                                     UnknownCurrency),
                  summary="Promotions, newest first")
async def list_promotions(admin: Admin, state: State,
                          kind: Annotated[s.Kind | None, Query()] = None,
                          currency: Currency = None,
                          active: Annotated[bool | None, Query()] = None,
                          limit: Limit = 50, cursor_: Cursor = None) -> Response:
    """Filters `kind`, `currency`, `active`; each with `granted_total`, `granted_count` and
    `budget_left`. Admin or auditor."""
    page = await _bonuses(state).promotions(PromotionFilter(kind, currency, active),
                                            cursor_text=cursor_, limit=limit)
    return model_response(s.PromotionPage(data=[s.PromotionOut.of(p) for p in page.items],
                                          next_cursor=page.next_cursor))


@admin_router.get("/promotions/{promotion_id}", response_model=s.PromotionOut,
                  responses=problems(ValidationFailed, Unauthorized, Forbidden, NotFound),
                  summary="One promotion, with what it has granted")
async def get_promotion(promotion_id: IdPath, admin: Admin, state: State) -> Response:
    """Its terms, and what it has granted so far. Admin or auditor."""
    return model_response(s.PromotionOut.of(await _bonuses(state).promotion(promotion_id)))


@admin_router.patch("/promotions/{promotion_id}", response_model=s.PromotionOut,
                    responses=problems(ValidationFailed, Unauthorized, Forbidden, NotFound),
                    summary="Change a promotion (deactivate it, move its window, ...)")
async def update_promotion(promotion_id: IdPath, body: s.PromotionPatchIn,
                           admin: AdminWriter, state: State, request: Request) -> Response:
    """Only the fields sent change. Bonuses already granted keep their terms and go on:
    deactivating a promotion only stops new grants. Audited."""
    promo = await _bonuses(state).update_promotion(admin, promotion_id, body,
                                                   client_ip(request))
    return model_response(s.PromotionOut.of(promo))


@admin_router.post("/bonuses", status_code=201, response_model=s.AdminBonusOut,
                   responses=problems(*_GRANT_ERRORS),
                   summary="Grant a manual promotion's bonus to a user")
async def admin_grant(body: s.GrantIn, admin: AdminWriter, state: State,
                      idem: IdempotencyKey, request: Request) -> Response:
    """Like `POST /internal/v1/bonuses`, by an admin; audited with `reason`."""
    entry = audit.entry(actor=admin.user_id, actor_role=admin.role, action="bonus.grant",
                        target=f"user:{body.user_id}", ip=client_ip(request),
                        details={"promotion_code": body.promotion_code.upper(),
                                 "amount": body.amount, "reason": body.reason})
    return replay_response(await _bonuses(state).grant(
        actor=f"admin:{admin.user_id}", scope=f"admin:{admin.user_id}", body=body, idem=idem,
        audit_entry=entry))


@admin_router.get("/bonuses", response_model=s.AdminBonusPage,
                  responses=problems(ValidationFailed, Unauthorized, Forbidden,
                                     UnknownCurrency),
                  summary="Bonuses, newest first, with filters")
async def admin_bonuses(
    admin: Admin, state: State,
    user_id: Annotated[str | None, Query(pattern=USER_ID_RE)] = None,
    status: StatusQuery = None, currency: Currency = None,
    promotion_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Limit = 50, cursor_: Cursor = None,
) -> Response:
    """Every user's bonuses, with `user_id` and `source` (why it was granted). Admin or
    auditor."""
    f = BonusFilter(user_id=user_id, status=status, currency=currency,
                    promotion_id=promotion_id)
    page = await _bonuses(state).bonuses(f, cursor_text=cursor_, limit=limit)
    return model_response(s.AdminBonusPage(data=[s.AdminBonusOut.of(x) for x in page.items],
                                           next_cursor=page.next_cursor))


@admin_router.get("/bonuses/{bonus_id}", response_model=s.AdminBonusOut,
                  responses=problems(ValidationFailed, Unauthorized, Forbidden, NotFound),
                  summary="One bonus")
async def admin_bonus(bonus_id: IdPath, admin: Admin, state: State) -> Response:
    """With its wagering `progress`, what it converted and what was forfeited. Admin or
    auditor."""
    return model_response(s.AdminBonusOut.of(await _bonuses(state).bonus(bonus_id)))


@admin_router.post("/bonuses/{bonus_id}/forfeit", response_model=s.AdminBonusOut,
                   responses=problems(ValidationFailed, Unauthorized, Forbidden, NotFound,
                                      BonusNotActive),
                   summary="Forfeit an active bonus: what remains goes back to promotions")
async def forfeit(bonus_id: IdPath, body: s.ForfeitIn, admin: AdminWriter, state: State,
                  request: Request) -> Response:
    """Audited with `reason`. A bonus no longer active answers 409 `bonus_not_active`."""
    found = await _bonuses(state).forfeit(admin, bonus_id, body.reason, client_ip(request))
    return model_response(s.AdminBonusOut.of(found))
