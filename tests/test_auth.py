"""Built-in accounts: sign-in cycle, refresh rotation and reuse, 2FA, brute-force limits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from asgi_lifespan import LifespanManager

from coinpurse.app import create_app
from coinpurse.auth.tokens import issue_hs256
from coinpurse.config import Settings
from tests.conftest import TEST_JWT_SECRET, MakeKey, auth

PASSWORD = "correct horse battery"


def builtin_settings(db_url: str, **extra: Any) -> Settings:
    return Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                    auth="builtin", currencies="points:0,usdt:2", **extra)


@pytest.fixture
async def bclient(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(builtin_settings(db_url))
    async with LifespanManager(app, shutdown_timeout=60), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        yield c


async def register_and_login(c: httpx.AsyncClient, email: str,
                             **extra: str) -> dict[str, Any]:
    r = await c.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 202, r.text
    r = await c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD, **extra})
    assert r.status_code == 200, r.text
    session: dict[str, Any] = r.json()
    return session


async def test_sign_in_cycle_with_refresh_rotation_and_reuse(bclient: httpx.AsyncClient) -> None:
    s1 = await register_and_login(bclient, "Ann@Example.com")
    assert s1["token_type"] == "bearer" and s1["expires_in"] == 900 and s1["mfa"] is False
    me = await bclient.get("/api/v1/me", headers=auth(s1["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == "ann@example.com" and me.json()["role"] == "user"
    wallet = await bclient.get("/api/v1/wallet/balance", headers=auth(s1["access_token"]))
    assert wallet.status_code == 200 and wallet.json()["user_id"] == me.json()["id"]

    s2 = (await bclient.post("/api/v1/auth/refresh",
                             json={"refresh_token": s1["refresh_token"]})).json()
    assert s2["refresh_token"] != s1["refresh_token"]
    s3 = (await bclient.post("/api/v1/auth/refresh",
                             json={"refresh_token": s2["refresh_token"]})).json()
    # Reusing s1's (spent) token revokes the whole family, s3's live token included.
    reuse = await bclient.post("/api/v1/auth/refresh",
                               json={"refresh_token": s1["refresh_token"]})
    assert reuse.status_code == 401 and reuse.json()["code"] == "refresh_token_reused"
    dead = await bclient.post("/api/v1/auth/refresh",
                              json={"refresh_token": s3["refresh_token"]})
    assert dead.status_code == 401

    s4 = (await bclient.post("/api/v1/auth/login",
                             json={"email": "ann@example.com", "password": PASSWORD})).json()
    out = await bclient.post("/api/v1/auth/logout", json={"refresh_token": s4["refresh_token"]})
    assert out.status_code == 204
    gone = await bclient.post("/api/v1/auth/refresh", json={"refresh_token": s4["refresh_token"]})
    assert gone.status_code == 401
    bogus = await bclient.post("/api/v1/auth/refresh", json={"refresh_token": "cpr_nope"})
    assert bogus.status_code == 401 and bogus.json()["code"] == "unauthorized"


async def test_no_account_enumeration(bclient: httpx.AsyncClient) -> None:
    await register_and_login(bclient, "bob@example.com")
    again = await bclient.post("/api/v1/auth/register",
                               json={"email": "bob@example.com", "password": "other password 9"})
    fresh = await bclient.post("/api/v1/auth/register",
                               json={"email": "new@example.com", "password": PASSWORD})
    assert again.status_code == fresh.status_code == 202
    assert again.json() == fresh.json()
    wrong_pw = await bclient.post("/api/v1/auth/login",
                                  json={"email": "bob@example.com", "password": "nope nope 1"})
    no_user = await bclient.post("/api/v1/auth/login",
                                 json={"email": "ghost@example.com", "password": "nope nope 1"})
    assert wrong_pw.status_code == no_user.status_code == 401
    # Identical but for each request's own id.
    wrong_body, ghost_body = wrong_pw.json(), no_user.json()
    assert wrong_body.pop("request_id") == wrong_pw.headers["x-request-id"]
    assert ghost_body.pop("request_id") == no_user.headers["x-request-id"]
    assert wrong_body == ghost_body
    # The first registration's password still works: registering again changed nothing.
    ok = await bclient.post("/api/v1/auth/login",
                            json={"email": "bob@example.com", "password": PASSWORD})
    assert ok.status_code == 200


async def test_password_policy_and_bad_bodies(bclient: httpx.AsyncClient) -> None:
    for body in ({"email": "a@example.com", "password": "short"},
                 {"email": "a@example.com", "password": "aaaaaaaaaaaaaa"},
                 {"email": "not-an-email", "password": PASSWORD},
                 {"email": "a@example.com"},
                 {"email": "a@example.com", "password": PASSWORD, "role": "admin"}):
        r = await bclient.post("/api/v1/auth/register", json=body)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", body


async def test_nul_in_an_email(bclient: httpx.AsyncClient) -> None:
    """The e-mail reached PostgreSQL (the user row, the failed-login audit entry): a 500."""
    for route in ("register", "login"):
        r = await bclient.post(f"/api/v1/auth/{route}",
                               json={"email": "a\x00b@example.com", "password": PASSWORD})
        assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text


async def test_two_factor_enrol_login_recovery_disable(bclient: httpx.AsyncClient) -> None:
    s = await register_and_login(bclient, "carol@example.com")
    h = auth(s["access_token"])
    enrol = (await bclient.post("/api/v1/auth/2fa/enroll", headers=h)).json()
    assert enrol["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(enrol["secret"])
    bad = await bclient.post("/api/v1/auth/2fa/confirm", headers=h, json={"code": "000000"})
    assert bad.status_code == 401 and bad.json()["code"] == "invalid_mfa_code"
    confirmed = await bclient.post("/api/v1/auth/2fa/confirm", headers=h,
                                   json={"code": totp.now()})
    assert confirmed.status_code == 200
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10

    creds = {"email": "carol@example.com", "password": PASSWORD}
    need = await bclient.post("/api/v1/auth/login", json=creds)
    assert need.status_code == 401 and need.json()["code"] == "mfa_required"
    wrong = await bclient.post("/api/v1/auth/login", json={**creds, "totp_code": "123456"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_mfa_code"
    good = await bclient.post("/api/v1/auth/login", json={**creds, "totp_code": totp.now()})
    assert good.status_code == 200 and good.json()["mfa"] is True
    rec = await bclient.post("/api/v1/auth/login", json={**creds, "recovery_code": codes[0]})
    assert rec.status_code == 200 and rec.json()["mfa"] is True
    spent = await bclient.post("/api/v1/auth/login", json={**creds, "recovery_code": codes[0]})
    assert spent.status_code == 401
    # A refreshed session keeps its 2FA status.
    refreshed = await bclient.post("/api/v1/auth/refresh",
                                   json={"refresh_token": good.json()["refresh_token"]})
    assert refreshed.json()["mfa"] is True

    off = await bclient.post("/api/v1/auth/2fa/disable", headers=h,
                             json={"totp_code": totp.now()})
    assert off.status_code == 200
    plain = await bclient.post("/api/v1/auth/login", json=creds)
    assert plain.status_code == 200 and plain.json()["mfa"] is False


async def test_burst_of_bad_logins_is_rate_limited(bclient: httpx.AsyncClient) -> None:
    await register_and_login(bclient, "dave@example.com")
    answers = [
        await bclient.post("/api/v1/auth/login",
                           json={"email": "dave@example.com", "password": "wrong wrong 1"})
        for _ in range(15)
    ]
    statuses = [r.status_code for r in answers]
    assert statuses[:9] == [401] * 9 and statuses[-1] == 429
    limited = answers[-1]
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    # Even the right password waits now: the account is locked for the window.
    r = await bclient.post("/api/v1/auth/login",
                           json={"email": "dave@example.com", "password": PASSWORD})
    assert r.status_code == 429


async def test_builtin_routes_are_absent_in_external_mode(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/login", json={"email": "a@example.com",
                                                      "password": PASSWORD})
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_builtin_needs_a_secret() -> None:
    import os

    from coinpurse.config import ConfigError, load_settings

    old = dict(os.environ)
    try:
        os.environ["COINPURSE_AUTH"] = "builtin"
        os.environ.pop("COINPURSE_JWT_SECRET", None)
        with pytest.raises(ConfigError, match="COINPURSE_JWT_SECRET"):
            load_settings()
    finally:
        os.environ.clear()
        os.environ.update(old)


async def test_gifts_to_unknown_users_are_refused_with_builtin_accounts(
    bclient: httpx.AsyncClient, make_key: MakeKey
) -> None:
    fan = await register_and_login(bclient, "fan@example.com")
    host = await register_and_login(bclient, "host@example.com")
    key = await make_key()
    credit = await bclient.post("/internal/v1/wallet/credit", headers={
        "X-API-Key": key, "Idempotency-Key": "fund-fan"}, json={
        "user_id": fan["user"]["id"], "currency": "points", "amount": 100,
        "description": "fund", "reference_id": "fund"})
    assert credit.status_code == 201
    h = {**auth(fan["access_token"]), "Idempotency-Key": "g1"}
    ghost = await bclient.post("/api/v1/gifts", headers=h,
                               json={"to_user_id": "nobody", "gift_type": "rose"})
    assert ghost.status_code == 422 and ghost.json()["reason"] == "unknown_recipient"
    ok = await bclient.post("/api/v1/gifts", headers={**h, "Idempotency-Key": "g2"},
                            json={"to_user_id": host["user"]["id"], "gift_type": "rose"})
    assert ok.status_code == 201 and ok.json()["giver_wallet"]["balance"] == 90


def _foreign_tokens() -> dict[str, str]:
    """Tokens the verifier refuses, each for another of PyJWT's reasons."""
    now = datetime.now(UTC)
    claims = {"sub": "u1", "exp": now + timedelta(minutes=5)}
    return {
        "three bad segments": "abc.def.ghi",
        "one segment": "not-a-jwt",
        "another secret": jwt.encode(claims, "another-secret-not-ours-0123456789abcdef",
                                     algorithm="HS256"),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "no sub": jwt.encode({"exp": claims["exp"]}, TEST_JWT_SECRET, algorithm="HS256"),
        "exp not a time": jwt.encode({"sub": "u1", "exp": "soon"}, TEST_JWT_SECRET,
                                     algorithm="HS256"),
    }


@pytest.mark.parametrize("name", list(_foreign_tokens()))
async def test_token_problems_are_in_coinpurse_words(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """The problem detail used to carry PyJWT's message ("invalid token: Not enough
    segments"): the codec's words, not ours. They go to the debug log instead."""
    token = _foreign_tokens()[name]
    with pytest.raises(jwt.InvalidTokenError) as refused:
        jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"],
                   options={"require": ["exp", "sub"]})
    codec_words = str(refused.value)
    assert codec_words
    caplog.set_level(logging.DEBUG, logger="coinpurse.auth")
    r = await client.get("/api/v1/me", headers=auth(token))
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "unauthorized"
    assert problem["detail"] == "the token is not valid"
    assert codec_words not in r.text
    assert any(codec_words in rec.getMessage() for rec in caplog.records
               if rec.name == "coinpurse.auth" and rec.levelno == logging.DEBUG)


async def test_an_expired_token_says_so(client: httpx.AsyncClient) -> None:
    token = issue_hs256(TEST_JWT_SECRET, "u1", ttl_s=-3600)
    r = await client.get("/api/v1/me", headers=auth(token))
    assert r.status_code == 401 and r.json()["detail"] == "the token has expired"


async def test_me_answers_only_what_applies(client: httpx.AsyncClient,
                                            bclient: httpx.AsyncClient) -> None:
    """An outside system's token: its claims only, no account fields set to null."""
    external = await client.get("/api/v1/me", headers=auth(issue_hs256(
        TEST_JWT_SECRET, "u1", role="merchant", mfa=True)))
    assert external.status_code == 200
    assert external.json() == {"id": "u1", "role": "merchant", "mfa": True}
    session = await register_and_login(bclient, "eve@example.com")
    me = (await bclient.get("/api/v1/me", headers=auth(session["access_token"]))).json()
    assert set(me) == {"id", "role", "mfa", "email", "totp_enabled", "created_at"}
    assert me["created_at"].endswith("Z") and me["created_at"] == session["user"]["created_at"]
