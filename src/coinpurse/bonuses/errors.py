"""The bonuses' refusals."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError


class InvalidPromoCode(CoinpurseError):
    code = "invalid_promo_code"
    status = 422
    title = "This promo code cannot be used here"


class PromotionCodeTaken(CoinpurseError):
    code = "promotion_code_taken"
    status = 409
    title = "Another promotion already has this code"


class PromotionBudgetExhausted(CoinpurseError):
    code = "promotion_budget_exhausted"
    status = 422
    title = "The promotion's budget is spent"


class PromotionLimitReached(CoinpurseError):
    code = "promotion_limit_reached"
    status = 422
    title = "The user has had this promotion as often as it allows"


class WageringIncomplete(CoinpurseError):
    code = "wagering_incomplete"
    status = 422
    title = "A bonus is still being wagered"


class SelfReferral(CoinpurseError):
    code = "self_referral"
    status = 422
    title = "A user cannot refer themselves"


class AlreadyReferred(CoinpurseError):
    code = "already_referred"
    status = 409
    title = "The user already has a referrer"


class BonusNotActive(CoinpurseError):
    code = "bonus_not_active"
    status = 409
    title = "The bonus is no longer active"


class BonusWalletReserved(CoinpurseError):
    code = "bonus_wallet_reserved"
    status = 422
    title = "Bonus wallets move only through the bonus rules"
