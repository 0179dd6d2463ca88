"""Identifiers: UUIDv7, unique across processes and ordered by creation time, so keyset
pages over them are pages in time."""

from __future__ import annotations

import uuid_utils


def new_id() -> str:
    return str(uuid_utils.uuid7())
