"""Opaque pagination cursors: the last row's id, base64url so clients do not build them."""

from __future__ import annotations

import base64
import binascii

from coinpurse.core.errors import ValidationFailed

_ID_MAX = 2**63 - 1  # BIGINT


def encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"e{last_id}".encode()).decode().rstrip("=")


def encode_text(last_id: str) -> str:
    return base64.urlsafe_b64encode(f"s{last_id}".encode()).decode().rstrip("=")


def decode_text(cursor: str | None) -> str | None:
    """A text id (UUIDv7 ids sort by time) from a cursor made by ``encode_text``."""
    if cursor is None or cursor == "":
        return None
    raw = _raw(cursor)
    if not raw.startswith("s") or not 1 < len(raw) <= 64 or not raw[1:].isprintable():
        raise _bad()
    return raw[1:]


def _bad() -> ValidationFailed:
    return ValidationFailed(
        "the cursor is not one this API returned",
        [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "invalid_cursor"}],
    )


def _raw(cursor: str) -> str:
    if len(cursor) > 96:
        raise _bad()
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad() from None


def decode(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    raw = _raw(cursor)
    bad = _bad()
    # ASCII digits only (str.isdigit() also accepts "²", which int() refuses), and an id
    # that fits the BIGINT column: anything else used to fail as a 500 in the driver.
    if not raw.startswith("e") or not raw[1:].isascii() or not raw[1:].isdigit():
        raise bad
    value = int(raw[1:])
    if value > _ID_MAX:
        raise bad
    return value
