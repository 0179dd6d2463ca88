"""Coinpurse's problem+json answers as exceptions: one class per stable ``code``.

Catch a subclass (``InsufficientFunds``) for one refusal, or ``CoinpurseError`` for all; an
answer with a code this version does not know raises the base class with that code.
A request that never got an answer (the network failed, retries ran out) raises
``CoinpurseNetworkError``: for a money-moving call, retry later with its ``idempotency_key``
and Coinpurse applies it at most once.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CoinpurseError(Exception):
    """An error answer from Coinpurse (RFC 9457 problem details with a stable ``code``)."""

    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        problem: dict[str, Any],
        *,
        status: int,
        idempotency_key: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.problem = problem
        self.status = status
        code = problem.get("code")
        self.code: str = code if isinstance(code, str) else self.default_code
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or self.title)
        self.idempotency_key = idempotency_key
        self.retry_after_s = retry_after_s
        super().__init__(f"{self.code} ({status}): {self.detail}")

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Field errors of a ``validation_error`` (empty otherwise)."""
        errors = self.problem.get("errors")
        return errors if isinstance(errors, list) else []


class CoinpurseNetworkError(Exception):
    """No answer from Coinpurse: connection refused or dropped, timeout, retries exhausted.

    For a money-moving call the outcome is unknown: call again with the same
    ``idempotency_key`` to learn it (Coinpurse replays the first answer, or applies it once).
    """

    def __init__(self, message: str, *, idempotency_key: str | None, attempts: int) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key
        self.attempts = attempts


class UnexpectedResponse(CoinpurseError):
    """An answer that is not Coinpurse's problem format (e.g. an HTML page from a proxy)."""

    default_code = "unexpected_response"


class ValidationFailed(CoinpurseError):
    default_code = "validation_error"


class Unauthorized(CoinpurseError):
    default_code = "unauthorized"


class Forbidden(CoinpurseError):
    default_code = "forbidden"


class NotFound(CoinpurseError):
    default_code = "not_found"


class MethodNotAllowed(CoinpurseError):
    default_code = "method_not_allowed"


class PayloadTooLarge(CoinpurseError):
    default_code = "payload_too_large"


class UnsupportedMediaType(CoinpurseError):
    default_code = "unsupported_media_type"


class UnknownCurrency(CoinpurseError):
    default_code = "unknown_currency"


class CurrencyNotTransferable(CoinpurseError):
    default_code = "currency_not_transferable"


class IdempotencyKeyReused(CoinpurseError):
    """The key was used before with a different request: use a new key."""

    default_code = "idempotency_key_reused"


class IdempotencyKeyInUse(CoinpurseError):
    """The first request with this key is still running (the client waits and retries)."""

    default_code = "idempotency_key_in_use"


class RateLimited(CoinpurseError):
    """Too many requests; ``retry_after_s`` says when to come back."""

    default_code = "rate_limited"


class InvalidCredentials(CoinpurseError):
    default_code = "invalid_credentials"


class MfaRequired(CoinpurseError):
    default_code = "mfa_required"


class InvalidMfaCode(CoinpurseError):
    default_code = "invalid_mfa_code"


class RefreshTokenReused(CoinpurseError):
    default_code = "refresh_token_reused"


class CsrfFailed(CoinpurseError):
    """A browser session's request without its CSRF token (not raised for keys or tokens)."""

    default_code = "csrf_failed"


class Conflict(CoinpurseError):
    default_code = "conflict"


class AlreadyReversed(CoinpurseError):
    default_code = "already_reversed"


class ServiceUnavailable(CoinpurseError):
    """The server could not commit; the client retries with the same key, then raises this."""

    default_code = "service_unavailable"


class Overloaded(CoinpurseError):
    """Too many requests were waiting on the server; retried with the same key (503)."""

    default_code = "overloaded"


class NotReady(CoinpurseError):
    """/readyz: the server is not ready (database, migrations, jobs, or shutting down)."""

    default_code = "not_ready"


class InternalError(CoinpurseError):
    default_code = "internal_error"


class InsufficientFunds(CoinpurseError):
    """The source's available balance is too small; nothing changed."""

    default_code = "insufficient_funds"


class BalanceOverflow(CoinpurseError):
    default_code = "balance_overflow"


class HoldNotOpen(CoinpurseError):
    default_code = "hold_not_open"


class CaptureExceedsHold(CoinpurseError):
    default_code = "capture_exceeds_hold"


class InvalidPosting(CoinpurseError):
    default_code = "invalid_posting"


class BatchAtomicFailed(CoinpurseError):
    default_code = "batch_atomic_failed"


class KycRequired(CoinpurseError):
    default_code = "kyc_required"


class LimitExceeded(CoinpurseError):
    default_code = "limit_exceeded"


class DebtOutstanding(CoinpurseError):
    default_code = "debt_outstanding"


class CurrencyNotWithdrawable(CoinpurseError):
    default_code = "currency_not_withdrawable"


class ProviderNotEnabled(CoinpurseError):
    default_code = "provider_not_enabled"


class ProviderUnavailable(CoinpurseError):
    default_code = "provider_unavailable"


class InvalidSignature(CoinpurseError):
    """Coinpurse refused a signature (a top-up verify call); not the webhook helper's error."""

    default_code = "invalid_signature"


class PaymentNotCompleted(CoinpurseError):
    default_code = "payment_not_completed"


class WithdrawalNotPending(CoinpurseError):
    default_code = "withdrawal_not_pending"


class KycSubmissionPending(CoinpurseError):
    default_code = "kyc_submission_pending"


class KycSubmissionNotPending(CoinpurseError):
    default_code = "kyc_submission_not_pending"


class ReconciliationRunning(CoinpurseError):
    default_code = "reconciliation_running"


class OutOfStock(CoinpurseError):
    default_code = "out_of_stock"


class PriceChanged(CoinpurseError):
    default_code = "price_changed"


class ProductInactive(CoinpurseError):
    default_code = "product_inactive"


class OwnProduct(CoinpurseError):
    default_code = "own_product"


class OrderRefunded(CoinpurseError):
    default_code = "order_refunded"


class RefundExceedsPaid(CoinpurseError):
    default_code = "refund_exceeds_paid"


class PreconditionFailed(CoinpurseError):
    default_code = "precondition_failed"


class InvalidPromoCode(CoinpurseError):
    default_code = "invalid_promo_code"


class PromotionCodeTaken(CoinpurseError):
    default_code = "promotion_code_taken"


class PromotionBudgetExhausted(CoinpurseError):
    default_code = "promotion_budget_exhausted"


class PromotionLimitReached(CoinpurseError):
    default_code = "promotion_limit_reached"


class WageringIncomplete(CoinpurseError):
    """A withdrawal while a bonus is being wagered (``left_to_wager`` in ``problem``)."""

    default_code = "wagering_incomplete"


class SelfReferral(CoinpurseError):
    default_code = "self_referral"


class AlreadyReferred(CoinpurseError):
    default_code = "already_referred"


class BonusNotActive(CoinpurseError):
    default_code = "bonus_not_active"


class BonusWalletReserved(CoinpurseError):
    default_code = "bonus_wallet_reserved"
class WebhookUrlRefused(CoinpurseError):
    default_code = "webhook_url_refused"


class TooManyStreams(CoinpurseError):
    default_code = "too_many_streams"


ERRORS_BY_CODE: dict[str, type[CoinpurseError]] = {
    cls.default_code: cls
    for cls in (
        ValidationFailed, Unauthorized, Forbidden, NotFound, MethodNotAllowed, PayloadTooLarge,
        UnsupportedMediaType, UnknownCurrency, CurrencyNotTransferable, IdempotencyKeyReused,
        IdempotencyKeyInUse, RateLimited, InvalidCredentials, MfaRequired, InvalidMfaCode,
        RefreshTokenReused, CsrfFailed, Conflict, AlreadyReversed, ServiceUnavailable,
        Overloaded, NotReady, InternalError,
        InsufficientFunds, BalanceOverflow, HoldNotOpen, CaptureExceedsHold, InvalidPosting,
        BatchAtomicFailed, KycRequired, LimitExceeded, DebtOutstanding, CurrencyNotWithdrawable,
        ProviderNotEnabled, ProviderUnavailable, InvalidSignature, PaymentNotCompleted,
        WithdrawalNotPending, KycSubmissionPending, KycSubmissionNotPending,
        ReconciliationRunning,
        OutOfStock, PriceChanged, ProductInactive, OwnProduct, OrderRefunded,
        RefundExceedsPaid, PreconditionFailed, WebhookUrlRefused, TooManyStreams,
        InvalidPromoCode, PromotionCodeTaken, PromotionBudgetExhausted, PromotionLimitReached,
        WageringIncomplete, SelfReferral, AlreadyReferred, BonusNotActive, BonusWalletReserved,
    )
}


def error_for(
    problem: dict[str, Any], *, status: int, idempotency_key: str | None = None,
    retry_after_s: float | None = None,
) -> CoinpurseError:
    """The exception for a problem answer: its code's class, else the base class."""
    cls = ERRORS_BY_CODE.get(str(problem.get("code")), CoinpurseError)
    return cls(problem, status=status, idempotency_key=idempotency_key,
               retry_after_s=retry_after_s)
