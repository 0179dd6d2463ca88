"""The events domain's problem codes."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError


class WebhookUrlRefused(CoinpurseError):
    """``reason``: invalid_url, scheme_not_allowed, unresolvable, address_not_allowed."""

    code = "webhook_url_refused"
    status = 422
    title = "The webhook URL may not be called"


class TooManyStreams(CoinpurseError):
    code = "too_many_streams"
    status = 429
    title = "Too many live streams are open; close one or retry later"

    def __init__(self, detail: str | None = None, retry_after_s: int = 5) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.headers["Retry-After"] = str(retry_after_s)
