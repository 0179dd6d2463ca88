"""KYC refusals: a tier too low, a limit reached, a submission in the wrong state."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError


class KycRequired(CoinpurseError):
    code = "kyc_required"
    status = 403
    title = "A higher verification (KYC) tier is required"


class LimitExceeded(CoinpurseError):
    code = "limit_exceeded"
    status = 422
    title = "A limit of the user's verification tier would be exceeded"


class KycSubmissionPending(CoinpurseError):
    code = "kyc_submission_pending"
    status = 409
    title = "A verification submission is already waiting for review"


class KycSubmissionNotPending(CoinpurseError):
    code = "kyc_submission_not_pending"
    status = 409
    title = "The verification submission has already been decided"
