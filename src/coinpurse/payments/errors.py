"""Top-up refusals, and the debt a refund can leave behind."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError


class DebtOutstanding(CoinpurseError):
    code = "debt_outstanding"
    status = 409
    title = "The user owes a debt from a refunded payment; withdrawals wait until it is repaid"


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
