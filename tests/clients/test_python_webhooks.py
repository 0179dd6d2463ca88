"""Webhook signature verification for receivers (the scheme of issue 10).

The signatures here are made with ``hmac`` directly, not with the helper under test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from coinpurse_client import WebhookSignatureError, construct_event, verify_signature

SECRET = "whsec_test_fake_receiver_0000000000"
OLD_SECRET = "whsec_test_fake_receiver_old_11111"
BODY = json.dumps({"id": "evt_1", "type": "transaction.posted",
                   "created_at": "2026-01-01T00:00:00Z",
                   "data": {"amount": 50, "currency": "points"}}).encode()


def sign(body: bytes, secret: str, t: int) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def header(body: bytes, *secrets: str, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    return ",".join([f"t={t}", *(f"v1={sign(body, s, t)}" for s in secrets)])


def test_a_correct_signature_is_accepted_and_the_event_returned() -> None:
    now = int(time.time())
    assert verify_signature(BODY, header(BODY, SECRET, t=now), SECRET) == now
    event = construct_event(BODY, header(BODY, SECRET, t=now), SECRET)
    assert event["type"] == "transaction.posted" and event["data"]["amount"] == 50
    assert verify_signature(BODY.decode(), header(BODY, SECRET, t=now), SECRET) == now


def test_during_a_rotation_any_listed_signature_or_secret_matches() -> None:
    both = header(BODY, OLD_SECRET, SECRET)  # the sender signs with the old and the new one
    verify_signature(BODY, both, SECRET)
    verify_signature(BODY, both, OLD_SECRET)
    verify_signature(BODY, header(BODY, OLD_SECRET), [SECRET, OLD_SECRET])  # receiver side


@pytest.mark.parametrize("case", ["wrong secret", "tampered body", "old", "future", "missing",
                                  "no v1", "no t", "bad t", "truncated"])
def test_a_bad_signature_is_refused(case: str) -> None:
    now = int(time.time())
    good = sign(BODY, SECRET, now)
    body, value = BODY, f"t={now},v1={good}"
    if case == "wrong secret":
        value = header(BODY, "whsec_someone_else", t=now)
    elif case == "tampered body":
        body = BODY.replace(b'"amount": 50', b'"amount": 5000')
    elif case == "old":
        value = header(BODY, SECRET, t=now - 301)
    elif case == "future":
        value = header(BODY, SECRET, t=now + 301)
    elif case == "missing":
        value = ""
    elif case == "no v1":
        value = f"t={now}"
    elif case == "no t":
        value = f"v1={good}"
    elif case == "bad t":
        value = f"t=soon,v1={good}"
    elif case == "truncated":
        value = f"t={now},v1={good[:-2]}"
    with pytest.raises(WebhookSignatureError):
        verify_signature(body, value, SECRET)
    with pytest.raises(WebhookSignatureError):
        construct_event(body, value, SECRET)


def test_the_tolerance_is_the_callers_and_now_can_be_fixed() -> None:
    signed_at = 1_700_000_000
    value = header(BODY, SECRET, t=signed_at)
    verify_signature(BODY, value, SECRET, now=signed_at + 290)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_signature(BODY, value, SECRET, now=signed_at + 61, tolerance_s=60)


def test_an_empty_secret_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        verify_signature(BODY, header(BODY, SECRET), "")
