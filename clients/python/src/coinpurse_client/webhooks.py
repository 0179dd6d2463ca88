"""Check that a webhook really comes from Coinpurse, and is not an old one replayed.

Coinpurse signs each delivery with the endpoint's secret::

    Coinpurse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

During a secret rotation the header carries one ``v1`` per live secret, and a receiver may
likewise accept several secrets. Pass the raw body bytes exactly as received: a re-encoded
JSON body does not match its signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any

SIGNATURE_HEADER = "Coinpurse-Signature"
EVENT_ID_HEADER = "Coinpurse-Event-Id"
DEFAULT_TOLERANCE_S = 300


class WebhookSignatureError(Exception):
    """The delivery is not authentic or is too old; answer it with 400 and do not process it."""


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if not value.isdigit():
                raise WebhookSignatureError("the signature timestamp is not a number")
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value.strip())
    if timestamp is None:
        raise WebhookSignatureError(f"no timestamp (t=) in the {SIGNATURE_HEADER} header")
    if not signatures:
        raise WebhookSignatureError(f"no v1 signature in the {SIGNATURE_HEADER} header")
    return timestamp, signatures


def expected_signature(secret: str, timestamp: int, payload: bytes) -> str:
    """The hex ``v1`` value for ``payload`` signed at ``timestamp``."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    payload: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Raise ``WebhookSignatureError`` unless ``header`` signs ``payload`` with one of the
    secrets within ``tolerance_s`` seconds of now; return the signed timestamp.

    Comparisons are constant-time, and every candidate is compared."""
    if not header:
        raise WebhookSignatureError(f"the {SIGNATURE_HEADER} header is missing")
    body = payload.encode() if isinstance(payload, str) else payload
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("a webhook secret must not be empty")
    timestamp, signatures = _parse(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookSignatureError(
            f"the signature timestamp is {int(current - timestamp)} s from now, outside the "
            f"{tolerance_s} s tolerance (a replayed or delayed delivery)")
    matched = False
    for candidate in secrets:
        expected = expected_signature(candidate, timestamp, body).encode()
        for signature in signatures:
            matched |= hmac.compare_digest(expected, signature.encode("utf-8", "replace"))
    if not matched:
        raise WebhookSignatureError("no signature matches the payload and secret")
    return timestamp


def construct_event(
    payload: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify the delivery, then return its event (``id``, ``type``, ``created_at``, ``data``)."""
    verify_signature(payload, header, secret, tolerance_s=tolerance_s, now=now)
    event = json.loads(payload)
    if not isinstance(event, dict):
        raise WebhookSignatureError("the payload is not a JSON object")
    return event
