"""The ledger's own refusals. Domain rules (KYC, limits, debts) declare theirs in their domain
and reach the caller through ``Rejection.error``; the ledger knows only these codes."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError, NotFound


class UnknownCurrency(CoinpurseError):
    code = "unknown_currency"
    status = 422
    title = "Unknown currency"


class IdempotencyKeyReused(CoinpurseError):
    code = "idempotency_key_reused"
    status = 422
    title = "Idempotency key reused with a different request"


class IdempotencyKeyInUse(CoinpurseError):
    code = "idempotency_key_in_use"
    status = 409
    title = "A request with this idempotency key is still running"


# Rejections: decided per transaction inside a batch, so they are values first and
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


# The engine's rejection codes and the errors they are rendered as.
REJECTIONS: dict[str, type[CoinpurseError]] = {
    cls.code: cls
    for cls in (InsufficientFunds, BalanceOverflow, BatchAtomicFailed, HoldNotOpen,
                CaptureExceedsHold, InvalidPosting)
}
REJECTIONS["hold_not_found"] = NotFound
