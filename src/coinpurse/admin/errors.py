"""Refusals of operators' actions."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError


class AlreadyReversed(CoinpurseError):
    code = "already_reversed"
    status = 409
    title = "This transaction has already been reversed"
