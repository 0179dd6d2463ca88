"""Logs: one access line per request (route template, status, caller, request id), the
request id echoed and carried into every line and problem body of its request, and never a
secret in a line."""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import httpx
import pyotp
import pytest

from coinpurse.core import logging as coinpurse_logging
from tests.conftest import auth, user_token

CREDIT = {"user_id": "u1", "currency": "points", "amount": 5, "description": "d",
          "reference_id": "r1"}


def _lines(server: Any, wait_for: str, timeout_s: float = 30) -> list[dict[str, Any]]:
    """The server's JSON log lines, once ``wait_for`` has been written."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = server.output()
        if wait_for in text or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_access_lines_and_request_ids(serve: Any, db_url: str, make_key_sync: Any) -> None:
    key = make_key_sync(db_url)
    server = serve(COINPURSE_LOG_FORMAT="json", COINPURSE_LOG_LEVEL="debug")
    base = server.base_url
    with httpx.Client(base_url=base) as c:
        credited = c.post("/internal/v1/wallet/credit", json=CREDIT, headers={
            "X-API-Key": key, "Idempotency-Key": "k1", "X-Request-ID": "trace-abc.1:2"})
        assert credited.status_code == 201
        assert credited.headers["x-request-id"] == "trace-abc.1:2"
        # An invalid id is replaced, never echoed; the problem body carries the new one.
        missing = c.get("/internal/v1/holds/secret-looking-path", headers={
            "X-API-Key": key, "X-Request-ID": "not valid!"})
        assert missing.status_code == 404
        made = missing.headers["x-request-id"]
        assert made != "not valid!" and len(made) == 24
        assert missing.json()["request_id"] == made
        mine = c.get("/api/v1/wallet/balance", headers=auth(user_token("u1")))
        assert mine.status_code == 200 and len(mine.headers["x-request-id"]) == 24
        forged = user_token("u1")[:-6] + "AAAAAA"  # a wrong signature: a debug line
        expired = c.get("/api/v1/wallet/balance", headers={
            **auth(forged), "X-Request-ID": "expired-1"})
        assert expired.status_code == 401 and expired.json()["request_id"] == "expired-1"
        nowhere = c.get("/no/such/route?token=abc", headers={"X-Request-ID": "nowhere-1"})
        assert nowhere.status_code == 404
    lines = _lines(server, '"nowhere-1"')
    access = {ln["request_id"]: ln for ln in lines if ln.get("event") == "request"}
    credit_line = access["trace-abc.1:2"]
    assert (credit_line["method"], credit_line["route"], credit_line["status"],
            credit_line["principal"]) == ("POST", "/internal/v1/wallet/credit", 201,
                                          "service:games")
    assert credit_line["duration_ms"] > 0 and credit_line["ts"].endswith("Z")
    hold_line = access[made]
    assert hold_line["route"] == "/internal/v1/holds/{hold_id}" and hold_line["status"] == 404
    assert access[mine.headers["x-request-id"]]["principal"] == "user:u1"
    assert access["nowhere-1"]["route"] == "<unmatched>"
    # Exactly one access line per request, and never a raw path or query.
    assert sum(1 for ln in lines if ln.get("event") == "request"
               and ln["request_id"] == "trace-abc.1:2") == 1
    output = server.output()
    assert "secret-looking-path" not in output and "token=abc" not in output
    # A line written while a request ran carries its id: the token refusal's debug line.
    refused = [ln for ln in lines if "token refused" in ln.get("event", "")]
    assert refused and refused[0]["request_id"] == "expired-1"


def test_no_secret_reaches_a_log_line(serve: Any, db_url: str, make_key_sync: Any) -> None:
    """Keys, tokens, passwords, TOTP secrets and card numbers, sent every way a client can,
    at debug level: none appears in the output."""
    key = make_key_sync(db_url)
    server = serve(COINPURSE_LOG_FORMAT="json", COINPURSE_LOG_LEVEL="debug",
                   COINPURSE_AUTH="builtin", COINPURSE_RATE_LIMIT_LOGIN="off")
    password = "Correct-horse-battery-42"
    card = "4242 4242 4242 4242"
    bad_token = user_token("u1")[:-6] + "AAAAAA"  # wrong signature
    with httpx.Client(base_url=server.base_url) as c:
        assert c.post("/api/v1/auth/register", json={
            "email": "ops@example.com", "password": password}).status_code == 202
        login = c.post("/api/v1/auth/login", json={"email": "ops@example.com",
                                                     "password": password})
        assert login.status_code == 200
        access, refresh = login.json()["access_token"], login.json()["refresh_token"]
        enrol = c.post("/api/v1/auth/2fa/enroll", headers=auth(access))
        assert enrol.status_code == 200
        totp_secret = enrol.json()["secret"]
        code = pyotp.TOTP(totp_secret).now()
        assert c.post("/api/v1/auth/2fa/confirm", headers=auth(access),
                      json={"code": code}).status_code == 200
        c.post("/api/v1/auth/login", json={"email": "ops@example.com", "password": "wrong" +
                                           password})
        c.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        c.get("/api/v1/wallet/balance", headers=auth(bad_token))
        c.post("/internal/v1/wallet/credit", headers={"X-API-Key": key, "Idempotency-Key": "c",
                                                      "X-Request-ID": "last-one"},
               json={**CREDIT, "metadata": {"card_number": card, "cvv": "123"},
                     "description": f"card {card}"})
        c.post("/internal/v1/wallet/credit", headers={"X-API-Key": key + "x"}, json=CREDIT)
    output = "\n".join(json.dumps(ln) for ln in _lines(server, '"last-one"'))
    assert '"event": "request"' in output  # the lines are there to be searched
    for secret in (key, password, access, refresh, totp_secret, bad_token, card,
                   card.replace(" ", "")):
        assert secret not in output, secret[:12]


def test_the_redaction_step_removes_secrets_from_any_line() -> None:
    """Whatever a future line carries (a message, its arguments, fields, nested values,
    an exception), the redaction step takes the secrets out."""
    stream = io.StringIO()
    coinpurse_logging.configure("debug", "json", stream=stream)
    jwt = user_token("u9")
    key = "cpk_" + "a" * 10 + "cp_" + "B" * 30
    try:
        log = coinpurse_logging.get_logger("coinpurse.test")
        log.info("calling", authorization=f"Bearer {jwt}", password="hunter2hunter2",
                 body={"nested": {"totp_secret": "JBSWY3DPEHPK3PXP", "api_key": key}},
                 csrf="csrf-value-not-for-logs",
                 note=f"the card 4111-1111-1111-1111 and {jwt}")
        logging.getLogger("coinpurse.stdlib").warning("token %s for key %s", jwt, key)
        try:
            raise ValueError(f"bad otpauth://totp/x?secret=JBSWY3DPEHPK3PXP {jwt}")
        except ValueError:
            logging.getLogger("coinpurse.stdlib").exception("failed")
        coinpurse_logging.flush()
    finally:
        coinpurse_logging.configure("info", "json")
    text = stream.getvalue()
    lines = [json.loads(x) for x in text.splitlines()]
    assert len(lines) == 3
    for secret in (jwt, "hunter2hunter2", "JBSWY3DPEHPK3PXP", "4111-1111-1111-1111",
                   "B" * 30, "csrf-value-not-for-logs"):
        assert secret not in text, secret
    assert lines[0]["password"] == "[redacted]" and lines[0]["event"] == "calling"
    assert "[redacted]" in lines[1]["event"] and lines[2]["event"] == "failed"


@pytest.mark.parametrize("value", ["amount 12345 of 9876543210", "2026-12-01T21:59:12Z",
                                   "0190a0b0-0000-7000-8000-000000000001"])
def test_ordinary_values_are_left_alone(value: str) -> None:
    assert coinpurse_logging.redact_text(value) == value
