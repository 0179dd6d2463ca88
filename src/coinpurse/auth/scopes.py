"""Service key scopes: ``area:action[:currency]`` strings such as ``wallet:debit:points``.

A granted scope covers every scope it is a segment-prefix of, ``*`` stands for any one segment
and a trailing ``*`` for the rest: ``wallet:debit:*`` and ``wallet:debit`` both allow debits in
every currency, ``*`` allows everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SCOPE_RE = re.compile(r"^(\*|[a-z_]+(:([a-z0-9_]+|\*))*)$")
KNOWN_AREAS = ("wallet", "transfers", "holds", "users", "events", "monitors", "bonuses",
               "referrals", "*")


def parse_scopes(raw: str) -> tuple[str, ...]:
    """Parse a comma- or space-separated list; raise ValueError naming a bad one."""
    scopes = tuple(s for s in re.split(r"[\s,]+", raw.strip()) if s)
    if not scopes:
        raise ValueError("at least one scope is needed, e.g. wallet:read,wallet:credit:points")
    for s in scopes:
        if len(s) > 64 or not SCOPE_RE.match(s) or s.split(":")[0] not in KNOWN_AREAS:
            raise ValueError(
                f"{s!r} is not a scope (examples: *, wallet:read, wallet:credit:points, "
                "wallet:debit:*, transfers:write)"
            )
    return tuple(dict.fromkeys(scopes))


def allows(granted: Iterable[str], required: str) -> bool:
    want = required.split(":")
    for scope in granted:
        have = scope.split(":")
        if len(have) > len(want):
            continue
        for i, part in enumerate(have):
            if part == "*" and i == len(have) - 1:
                return True
            if part not in ("*", want[i]):
                break
        else:
            return True
    return False
