"""Withdrawal refusals."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError


class CurrencyNotWithdrawable(CoinpurseError):
    code = "currency_not_withdrawable"
    status = 422
    title = "This currency cannot be withdrawn"


class WithdrawalNotPending(CoinpurseError):
    code = "withdrawal_not_pending"
    status = 409
    title = "The withdrawal is no longer pending"
