"""Expected failures: each has a stable snake_case ``code`` and an HTTP status.

The HTTP edge renders them as RFC 9457 ``application/problem+json``; nothing below the routes
imports the web framework, so services raise these and stay testable on their own.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

PROBLEM_CONTENT_TYPE = "application/problem+json"


class CoinpurseError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra
        self.headers: dict[str, str] = {}

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body

    def problem_bytes(self) -> bytes:
        return orjson.dumps(self.problem())


class ValidationFailed(CoinpurseError):
    code = "validation_error"
    status = 422
    title = "The request is not valid"

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, errors=errors or [])


class Unauthorized(CoinpurseError):
    code = "unauthorized"
    status = 401
    title = "Authentication required"


class Forbidden(CoinpurseError):
    code = "forbidden"
    status = 403
    title = "Not allowed"


class NotFound(CoinpurseError):
    code = "not_found"
    status = 404
    title = "Not found"


class MethodNotAllowed(CoinpurseError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class PayloadTooLarge(CoinpurseError):
    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(CoinpurseError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class UnknownCurrency(CoinpurseError):
    code = "unknown_currency"
    status = 422
    title = "Unknown currency"


class CurrencyNotTransferable(CoinpurseError):
    code = "currency_not_transferable"
    status = 422
    title = "This currency cannot move between users"


class IdempotencyKeyReused(CoinpurseError):
    code = "idempotency_key_reused"
    status = 422
    title = "Idempotency key reused with a different request"


class IdempotencyKeyInUse(CoinpurseError):
    code = "idempotency_key_in_use"
    status = 409
    title = "A request with this idempotency key is still running"


class RateLimited(CoinpurseError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.headers["Retry-After"] = str(retry_after_s)


class InvalidCredentials(CoinpurseError):
    code = "invalid_credentials"
    status = 401
    title = "Wrong e-mail or password"


class MfaRequired(CoinpurseError):
    code = "mfa_required"
    status = 401
    title = "A two-factor code is required"


class InvalidMfaCode(CoinpurseError):
    code = "invalid_mfa_code"
    status = 401
    title = "The two-factor code is not valid"


class RefreshTokenReused(CoinpurseError):
    code = "refresh_token_reused"
    status = 401
    title = "This refresh token was already used; every session of its family is revoked"


class Conflict(CoinpurseError):
    code = "conflict"
    status = 409
    title = "The request conflicts with the current state"


class AlreadyReversed(CoinpurseError):
    code = "already_reversed"
    status = 409
    title = "This transaction has already been reversed"


class ServiceUnavailable(CoinpurseError):
    code = "service_unavailable"
    status = 503
    title = "Service unavailable; retry with the same idempotency key"


# Ledger rejections: decided per transaction inside a batch, so they are values first and
# exceptions only at the edge. Ordered by precedence, as the engine checks them.
class LedgerRejection(CoinpurseError):
    status = 422


class InsufficientFunds(LedgerRejection):
    code = "insufficient_funds"
    title = "Insufficient funds"


class BalanceOverflow(LedgerRejection):
    code = "balance_overflow"
    title = "The balance would leave the 64-bit range"


class HoldNotOpen(LedgerRejection):
    code = "hold_not_open"
    status = 409
    title = "The hold is no longer open"


class CaptureExceedsHold(LedgerRejection):
    code = "capture_exceeds_hold"
    title = "The capture is larger than the hold"


class InvalidPosting(LedgerRejection):
    code = "invalid_posting"
    title = "A posting must move a positive amount between two different accounts"


class BatchAtomicFailed(LedgerRejection):
    code = "batch_atomic_failed"
    title = "Not applied: another transfer in this atomic batch was refused"


# Top-ups, withdrawals and KYC (coinpurse.payments, .withdrawals, .kyc).
class KycRequired(LedgerRejection):
    code = "kyc_required"
    status = 403
    title = "A higher verification (KYC) tier is required"


class LimitExceeded(LedgerRejection):
    code = "limit_exceeded"
    title = "A limit of the user's verification tier would be exceeded"


class DebtOutstanding(LedgerRejection):
    code = "debt_outstanding"
    status = 409
    title = "The user owes a debt from a refunded payment; withdrawals wait until it is repaid"


class CurrencyNotWithdrawable(CoinpurseError):
    code = "currency_not_withdrawable"
    status = 422
    title = "This currency cannot be withdrawn"


class ProviderNotEnabled(CoinpurseError):
    code = "provider_not_enabled"
    status = 422
    title = "This payment provider is not enabled here"


class ProviderUnavailable(CoinpurseError):
    code = "provider_unavailable"
    status = 503
    title = "The payment provider could not be reached; retry with the same idempotency key"


class InvalidSignature(CoinpurseError):
    code = "invalid_signature"
    status = 400
    title = "The signature is missing or does not match"


class PaymentNotCompleted(CoinpurseError):
    code = "payment_not_completed"
    status = 409
    title = "The provider does not report this payment as completed"


class WithdrawalNotPending(CoinpurseError):
    code = "withdrawal_not_pending"
    status = 409
    title = "The withdrawal is no longer pending"


class KycSubmissionPending(CoinpurseError):
    code = "kyc_submission_pending"
    status = 409
    title = "A verification submission is already waiting for review"


class KycSubmissionNotPending(CoinpurseError):
    code = "kyc_submission_not_pending"
    status = 409
    title = "The verification submission has already been decided"


REJECTIONS: dict[str, type[CoinpurseError]] = {
    cls.code: cls
    for cls in (InsufficientFunds, BalanceOverflow, BatchAtomicFailed, HoldNotOpen,
                CaptureExceedsHold, InvalidPosting, KycRequired, LimitExceeded, DebtOutstanding)
}
REJECTIONS["hold_not_found"] = NotFound

# Every code a client may see, for the OpenAPI document and the README.
ALL_ERRORS: tuple[type[CoinpurseError], ...] = (
    ValidationFailed, Unauthorized, Forbidden, NotFound, MethodNotAllowed, PayloadTooLarge,
    UnsupportedMediaType, UnknownCurrency, CurrencyNotTransferable, IdempotencyKeyReused,
    IdempotencyKeyInUse, RateLimited, InvalidCredentials, MfaRequired, InvalidMfaCode,
    RefreshTokenReused, Conflict, AlreadyReversed,
    InsufficientFunds, BalanceOverflow, BatchAtomicFailed, HoldNotOpen, CaptureExceedsHold,
    InvalidPosting,
    KycRequired, LimitExceeded, DebtOutstanding, CurrencyNotWithdrawable, ProviderNotEnabled,
    ProviderUnavailable, InvalidSignature, PaymentNotCompleted, WithdrawalNotPending,
    KycSubmissionPending, KycSubmissionNotPending,
    ServiceUnavailable, CoinpurseError,
)
