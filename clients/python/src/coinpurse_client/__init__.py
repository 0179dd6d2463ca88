"""Coinpurse's Python client: sync and async, typed, idempotent retries, problem errors.

    from coinpurse_client import ServiceClient

    with ServiceClient("http://127.0.0.1:8000", api_key="cp_...") as coinpurse:
        tx = coinpurse.credit(user_id="alice", currency="points", amount=50,
                              description="Quest reward", reference_id="quest-42")
"""

from coinpurse_client.async_client import AsyncServiceClient, AsyncUserClient
from coinpurse_client.client import ServiceClient, UserClient
from coinpurse_client.errors import (
    AlreadyReversed,
    BalanceOverflow,
    BatchAtomicFailed,
    CaptureExceedsHold,
    CoinpurseError,
    CoinpurseNetworkError,
    Conflict,
    CurrencyNotTransferable,
    CurrencyNotWithdrawable,
    DebtOutstanding,
    Forbidden,
    HoldNotOpen,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientFunds,
    InternalError,
    InvalidCredentials,
    InvalidMfaCode,
    InvalidPosting,
    InvalidSignature,
    KycRequired,
    KycSubmissionNotPending,
    KycSubmissionPending,
    LimitExceeded,
    MethodNotAllowed,
    MfaRequired,
    NotFound,
    PayloadTooLarge,
    PaymentNotCompleted,
    ProviderNotEnabled,
    ProviderUnavailable,
    RateLimited,
    RefreshTokenReused,
    Overloaded,
    ServiceUnavailable,
    Unauthorized,
    UnexpectedResponse,
    UnknownCurrency,
    UnsupportedMediaType,
    ValidationFailed,
    WithdrawalNotPending,
)
from coinpurse_client.models import Posting, TransferRequest
from coinpurse_client.retry import RetryEvent, RetryPolicy
from coinpurse_client.webhooks import WebhookSignatureError, construct_event, verify_signature

__version__ = "0.1.0"

__all__ = [
    "AlreadyReversed", "AsyncServiceClient", "AsyncUserClient", "BalanceOverflow",
    "BatchAtomicFailed", "CaptureExceedsHold", "CoinpurseError", "CoinpurseNetworkError",
    "Conflict", "CurrencyNotTransferable", "CurrencyNotWithdrawable", "DebtOutstanding",
    "Forbidden", "HoldNotOpen", "IdempotencyKeyInUse", "IdempotencyKeyReused",
    "InsufficientFunds", "InternalError", "InvalidCredentials", "InvalidMfaCode",
    "InvalidPosting", "InvalidSignature", "KycRequired", "KycSubmissionNotPending",
    "KycSubmissionPending", "LimitExceeded", "MethodNotAllowed", "MfaRequired", "NotFound",
    "PayloadTooLarge", "PaymentNotCompleted", "Posting", "ProviderNotEnabled",
    "ProviderUnavailable", "RateLimited", "RefreshTokenReused", "RetryEvent", "RetryPolicy",
    "Overloaded", "ServiceClient", "ServiceUnavailable", "TransferRequest", "Unauthorized",
    "UnexpectedResponse", "UnknownCurrency", "UnsupportedMediaType", "UserClient",
    "ValidationFailed", "WebhookSignatureError", "WithdrawalNotPending", "__version__",
    "construct_event", "verify_signature",
]
