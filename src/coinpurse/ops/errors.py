"""Operations' problems."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError


class NotReady(CoinpurseError):
    code = "not_ready"
    status = 503
    title = "Not ready to serve: see checks"
