"""Request field types shared by every API: strict, bounded, and safe for both databases.

Strings refuse NUL and lone surrogates (PostgreSQL cannot store them, and they would fail as a
500 deep in the driver); amounts are strict JSON integers, never floats, strings or booleans.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    StringConstraints,
)

from coinpurse.core.clock import iso

AMOUNT_MAX = 2**63 - 1  # BIGINT

METADATA_MAX_BYTES = 4096
METADATA_MAX_DEPTH = 5
ADDRESS_RE = r"^[a-z][a-z0-9_-]{0,31}(:[A-Za-z0-9._@+-]{1,128}){0,3}$"
USER_ID_RE = r"^[A-Za-z0-9._@+-]{1,128}$"
KIND_RE = r"^[a-z][a-z0-9_]{0,31}$"


class StrictModel(BaseModel):
    """A request body: unknown fields are refused, so a typo is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid")


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


clean_text = AfterValidator(_clean_text)


def _depth(value: Any, level: int = 1) -> int:
    if level > METADATA_MAX_DEPTH:
        # Already too deep: stop here, so hostile nesting cannot raise RecursionError (a 500).
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if _depth(value) > METADATA_MAX_DEPTH:
        raise ValueError(f"must be nested at most {METADATA_MAX_DEPTH} levels deep")
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"must be plain JSON ({exc})") from None
    if size > METADATA_MAX_BYTES:
        raise ValueError(f"must be at most {METADATA_MAX_BYTES} bytes as JSON, not {size}")
    return value


Amount = Annotated[
    StrictInt,
    Field(ge=1, le=AMOUNT_MAX, description="Integer amount in minor units, 1 to 2^63-1.",
          examples=[100]),
]
UserId = Annotated[
    str,
    StringConstraints(pattern=USER_ID_RE),
    Field(description="The user's id in your auth system (letters, digits, . _ @ + -).",
          examples=["123"]),
]
Address = Annotated[
    str,
    StringConstraints(max_length=255, pattern=ADDRESS_RE),
    Field(description="An account address: user:<id>, user:<id>:<wallet>, service:<name>, "
          "world, platform:fees, agency:<id>, provider:<name>, ...",
          examples=["user:123"]),
]
CurrencyCode = Annotated[
    str, StringConstraints(min_length=1, max_length=16),
    Field(description="A configured currency code.", examples=["points"]),
]
Description = Annotated[
    str, StringConstraints(min_length=1, max_length=255), AfterValidator(_clean_text),
    Field(description="User-facing text.", examples=["Referral bonus"]),
]
ReferenceId = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(_clean_text),
    Field(description="Your reference for this movement (order id, ...).",
          examples=["ref_456"]),
]
InternalNotes = Annotated[
    str, StringConstraints(max_length=1000), AfterValidator(_clean_text),
    Field(description="Notes for operators; never shown to users."),
]
Kind = Annotated[
    str, StringConstraints(pattern=KIND_RE),
    Field(description="What the transaction is: transfer, gift, purchase, refund, ...",
          examples=["gift"]),
]
Metadata = Annotated[
    dict[str, Any], AfterValidator(_check_metadata),
    Field(description=f"Free JSON object, at most {METADATA_MAX_BYTES} bytes.",
          examples=[{"campaign": "spring"}]),
]

def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise ValueError("is out of range once converted to UTC") from None


UtcDateTime = Annotated[
    datetime, AfterValidator(_utc),
    Field(description="ISO 8601 with a time zone, e.g. 2026-01-01T00:00:00Z."),
]
"""A filter's time: naive and out-of-range times used to fail in the database as a 500."""

Timestamp = Annotated[datetime, PlainSerializer(iso, return_type=str)]
"""An answer's time: an aware UTC datetime, written the one way every API does ("...Z")."""

IDEMPOTENCY_KEY_RE = re.compile(r"^[\x20-\x7e]{1,255}$")
