"""Opaque pagination cursors: the last row's id, base64url so clients do not build them."""

from __future__ import annotations

import base64
import binascii

from coinpurse.errors import ValidationFailed

_ID_MAX = 2**63 - 1  # BIGINT


def encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"e{last_id}".encode()).decode().rstrip("=")


def decode(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    bad = ValidationFailed(
        "the cursor is not one this API returned",
        [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "invalid_cursor"}],
    )
    if len(cursor) > 64:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    # ASCII digits only (str.isdigit() also accepts "²", which int() refuses), and an id
    # that fits the BIGINT column: anything else used to fail as a 500 in the driver.
    if not raw.startswith("e") or not raw[1:].isascii() or not raw[1:].isdigit():
        raise bad
    value = int(raw[1:])
    if value > _ID_MAX:
        raise bad
    return value
