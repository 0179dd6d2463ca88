"""The ledger's settings: currencies, who may go negative, idempotency, batching."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PrivateAttr, model_validator
from pydantic_settings import NoDecode

from coinpurse.core.settings import CoreSettings
from coinpurse.ledger.errors import UnknownCurrency

CURRENCY_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
SCALE_MAX = 18


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    scale: int


def parse_currencies(raw: Any) -> dict[str, Currency]:
    """Parse ``code:scale`` pairs such as ``points:0,usdt:2``."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        raise ValueError("must be code:scale pairs, e.g. points:0,usdt:2")
    currencies: dict[str, Currency] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        code, sep, scale_text = part.partition(":")
        code = code.strip()
        if not sep or not CURRENCY_CODE_RE.match(code):
            raise ValueError(
                f"{part!r} is not a code:scale pair (code: lowercase letters, digits and _, "
                "at most 16 characters; e.g. points:0,usdt:2)"
            )
        if not scale_text.strip().isdigit() or int(scale_text) > SCALE_MAX:
            raise ValueError(f"scale of {code!r} must be an integer from 0 to {SCALE_MAX}")
        if code in currencies:
            raise ValueError(f"currency {code!r} is listed twice")
        currencies[code] = Currency(code=code, scale=int(scale_text))
    if not currencies:
        raise ValueError("at least one currency is needed, e.g. points:0,usdt:2")
    return currencies


def currency_subset(raw: str, currencies: dict[str, Currency], what: str) -> frozenset[str]:
    """``*`` or a comma-separated list of configured currencies."""
    if raw.strip() == "*":
        return frozenset(currencies)
    codes = frozenset(c.strip() for c in raw.split(",") if c.strip())
    unknown = codes - set(currencies)
    if unknown:
        raise ValueError(f"{what} names currencies that are not configured: "
                         + ", ".join(sorted(unknown)))
    return codes


class LedgerSettings(CoreSettings):
    currencies: Annotated[dict[str, Currency], NoDecode, BeforeValidator(parse_currencies)] = (
        Field(default="points:0,usdt:2", validate_default=True))
    # Addresses that may go below zero because they stand for money outside the users' wallets.
    overdraft_addresses: str = "world,service:*,provider:*"
    idempotency_ttl_s: int = Field(default=86_400, ge=60, le=90 * 86_400)
    batch_max: int = Field(default=500, ge=1, le=10_000)
    # Requests waiting for a committer, per process; past it a request is refused at once
    # (503 overloaded, Retry-After) instead of waiting without end.
    ledger_queue_max: int = Field(default=10_000, ge=1, le=1_000_000)
    # Concurrent batches per process. One is best measured (bench/): batches grow larger and
    # do not wait on each other's row locks; more helps only when commits are slow.
    committers: int = Field(default=1, ge=1, le=32)
    # How long a batch whose database connection failed (a failover, a restart) is retried,
    # where its idempotency keys make that safe (ledger/retry.py), before answering 503.
    db_retry_s: float = Field(default=20.0, ge=0, le=600)

    _overdraft: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _parse_ledger(self) -> LedgerSettings:
        self._overdraft = tuple(p.strip() for p in self.overdraft_addresses.split(",")
                                if p.strip())
        return self

    def may_go_negative(self, address: str) -> bool:
        """User wallets never do, whatever the configuration says."""
        if address.startswith("user:"):
            return False
        return any(fnmatch.fnmatchcase(address, p) for p in self._overdraft)

    def currency(self, code: str) -> str:
        """``code`` if it is a configured currency; else 422 ``unknown_currency``."""
        if code not in self.currencies:
            raise UnknownCurrency(
                f"{code!r} is not a currency here; configured: " + ", ".join(self.currencies))
        return code

    @property
    def committer_count(self) -> int:
        return 1 if self.is_sqlite else self.committers
