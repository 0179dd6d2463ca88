"""Webhook signatures: how Coinpurse signs a delivery, and how a receiver checks one.

    Coinpurse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

While a rotated secret's grace period runs, the header carries one ``v1`` per live secret
(the new one first). The scheme is the Python client's (``coinpurse_client.webhooks``): both
verify each other's headers. A receiver, e.g. with Starlette::

    from coinpurse.events.signature import SignatureError, verify

    SECRET = os.environ["COINPURSE_WEBHOOK_SECRET"]        # shown once at creation

    async def coinpurse_webhook(request: Request) -> Response:
        body = await request.body()                          # the raw bytes, not re-encoded
        try:
            verify(body, request.headers.get("Coinpurse-Signature"), SECRET)
        except SignatureError:
            return Response(status_code=400)
        event = json.loads(body)                             # {"id", "type", "data", ...}
        if not await seen_before(event["id"]):               # deliveries are at least once
            await handle(event)
        return Response(status_code=204)                     # any 2xx within 10 s
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "Coinpurse-Signature"
EVENT_ID_HEADER = "Coinpurse-Event-Id"
TOLERANCE_S = 300


class SignatureError(Exception):
    """Not signed by a known secret, malformed, or older than the tolerance (a replay)."""


def expected(secret: str, timestamp: int, body: bytes) -> str:
    """The hex ``v1`` value of ``body`` signed at ``timestamp``."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body,
                    hashlib.sha256).hexdigest()


def header(secrets: Sequence[str], body: bytes, timestamp: int | None = None) -> str:
    """The ``Coinpurse-Signature`` value: one ``v1`` per secret, in the order given."""
    assert secrets, "at least one secret signs"
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={expected(s, t, body)}" for s in secrets)])


def _parse(value: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            if not item.isascii() or not item.isdigit():
                raise SignatureError("the signature timestamp is not a number")
            timestamp = int(item)
        elif name == "v1":
            signatures.append(item.strip())
    if timestamp is None or not signatures:
        raise SignatureError(f"the {SIGNATURE_HEADER} header needs t= and at least one v1=")
    return timestamp, signatures


def verify(body: bytes | str, signature: str | None, secret: str | Sequence[str], *,
           tolerance_s: int = TOLERANCE_S, now: float | None = None) -> int:
    """Raise ``SignatureError`` unless ``signature`` signs ``body`` with one of the secrets
    within ``tolerance_s`` of now; return the signed timestamp. Comparisons take constant
    time and every candidate is compared."""
    if not signature:
        raise SignatureError(f"the {SIGNATURE_HEADER} header is missing")
    raw = body.encode() if isinstance(body, str) else body
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or not all(secrets):
        raise ValueError("a webhook secret must not be empty")
    timestamp, signatures = _parse(signature)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(f"the signature is {int(current - timestamp)} s old, outside "
                             f"the {tolerance_s} s tolerance (a replay or a late delivery)")
    matched = False
    for s in secrets:
        want = expected(s, timestamp, raw).encode()
        for candidate in signatures:
            matched |= hmac.compare_digest(want, candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureError("no signature matches the body and secret")
    return timestamp
