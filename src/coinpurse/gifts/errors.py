"""Refusals of gifts."""

from __future__ import annotations

from coinpurse.core.errors import ValidationFailed


class GiftRefused(ValidationFailed):
    """A gift that can never succeed as asked (to oneself, in a currency not for gifts): a
    ``validation_error`` whose ``reason`` says which rule refused it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.extra["reason"] = reason
