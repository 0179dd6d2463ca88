"""The user API with Bearer JWTs: own balances and history only, and every bad token refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from coinpurse.app import create_app
from coinpurse.auth.tokens import issue_hs256
from coinpurse.config import Settings
from tests.conftest import TEST_JWT_SECRET, MakeKey, auth, user_token

BALANCE = "/api/v1/wallet/balance"
HISTORY = "/api/v1/wallet/transactions"
PROBLEM = "application/problem+json"
USER_ENTRY_KEYS = {"id", "transaction_id", "currency", "amount", "kind", "description",
                   "reference_id", "balance_after", "created_at"}
CURRENCIES = "points:0,usdt:2,diamonds:0"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hmac_jwt(payload: dict[str, Any], secret: bytes, alg: str = "HS256") -> str:
    """Sign by hand: PyJWT refuses PEM text and short keys as HMAC secrets."""
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    signing_input = f"{b64url_json({'alg': alg, 'typ': 'JWT'})}.{b64url_json(payload)}"
    sig = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(sig)}"


def claims(sub: str = "u1", **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + 3600}
    body.update(extra)
    return body


def assert_unauthorized(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == "unauthorized"
    assert body["status"] == 401
    assert {"type", "title", "detail"} <= body.keys()


async def credit(client: httpx.AsyncClient, key: str, user_id: str, amount: int,
                 currency: str = "points", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id, "currency": currency, "amount": amount,
                            "description": f"credit {amount}", "reference_id": f"r{amount}"}
    body.update(extra)
    r = await client.post("/internal/v1/wallet/credit", json=body,
                          headers={"X-API-Key": key,
                                   "Idempotency-Key": f"{user_id}-{currency}-{amount}"})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def debit(client: httpx.AsyncClient, key: str, user_id: str, amount: int,
                currency: str = "points", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id, "currency": currency, "amount": amount,
                            "description": f"debit {amount}", "reference_id": f"d{amount}"}
    body.update(extra)
    r = await client.post("/internal/v1/wallet/debit", json=body,
                          headers={"X-API-Key": key,
                                   "Idempotency-Key": f"d-{user_id}-{currency}-{amount}"})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


@asynccontextmanager
async def custom_client(db_url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An app with its own settings on the test database."""
    settings = Settings(database_url=db_url, currencies=CURRENCIES, **overrides)
    application = create_app(settings)
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


# --- balances and history ------------------------------------------------------------------


async def test_balance_of_new_user_is_zero_everywhere(client: httpx.AsyncClient) -> None:
    r = await client.get(BALANCE, headers=auth(user_token("fresh")))
    assert r.status_code == 200, r.text
    zero = {"balance": 0, "held": 0, "available": 0, "bonus": 0}
    assert r.json() == {"user_id": "fresh",
                        "wallets": {"points": zero, "usdt": zero, "diamonds": zero}}


async def test_balance_after_credits(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await credit(client, key, "u1", 100)
    await credit(client, key, "u1", 250, "usdt")
    await debit(client, key, "u1", 30)
    r = await client.get(BALANCE, headers=auth(user_token("u1")))
    wallets = r.json()["wallets"]
    assert wallets["points"] == {"balance": 70, "held": 0, "available": 70, "bonus": 0}
    assert wallets["usdt"] == {"balance": 250, "held": 0, "available": 250, "bonus": 0}
    assert wallets["diamonds"]["balance"] == 0


async def test_history_newest_first_with_signed_amounts(client: httpx.AsyncClient,
                                                        make_key: MakeKey) -> None:
    key = await make_key()
    first = await credit(client, key, "u1", 100, metadata={"secret": "meta"},
                         internal_notes="ops only")
    second = await debit(client, key, "u1", 40, internal_notes="also hidden")
    r = await client.get(HISTORY, headers=auth(user_token("u1")))
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["next_cursor"] is None
    assert len(page["data"]) == 2
    newest, oldest = page["data"]
    assert newest["transaction_id"] == second["id"]
    assert newest["amount"] == -40
    assert newest["kind"] == "debit"
    assert newest["description"] == "debit 40"
    assert newest["reference_id"] == "d40"
    assert newest["balance_after"] == 60
    assert newest["currency"] == "points"
    assert oldest["transaction_id"] == first["id"]
    assert oldest["amount"] == 100
    assert oldest["kind"] == "credit"
    assert oldest["description"] == "credit 100"
    assert oldest["reference_id"] == "r100"
    assert oldest["balance_after"] == 100
    for entry in page["data"]:
        assert set(entry) == USER_ENTRY_KEYS
        assert "service" not in entry
        assert "internal_notes" not in entry
        assert "metadata" not in entry
        assert "initiator" not in entry
    assert b"ops only" not in r.content
    assert b"also hidden" not in r.content
    assert b"meta" not in r.content
    assert b"games" not in r.content


async def test_user_never_sees_another_users_entries(client: httpx.AsyncClient,
                                                     make_key: MakeKey) -> None:
    key = await make_key()
    await credit(client, key, "alice", 10)
    await credit(client, key, "bob", 20)
    transfer = {
        "postings": [{"source": "user:bob", "destination": "user:alice", "amount": 5,
                      "currency": "points"}],
        "description": "gift", "reference_id": "g1",
    }
    r = await client.post("/internal/v1/transfers", json=transfer,
                          headers={"X-API-Key": key, "Idempotency-Key": "t1"})
    assert r.status_code == 201, r.text
    alice = (await client.get(HISTORY, headers=auth(user_token("alice")))).json()["data"]
    bob = (await client.get(HISTORY, headers=auth(user_token("bob")))).json()["data"]
    assert [e["amount"] for e in alice] == [5, 10]
    assert [e["amount"] for e in bob] == [-5, 20]
    assert not {e["id"] for e in alice} & {e["id"] for e in bob}
    # The shared transaction shows only each user's own side.
    assert alice[0]["transaction_id"] == bob[0]["transaction_id"]
    assert alice[0]["balance_after"] == 15 and bob[0]["balance_after"] == 15
    carol = await client.get(HISTORY, headers=auth(user_token("carol")))
    assert carol.json() == {"data": [], "next_cursor": None}
    # Query strings cannot pick another user.
    r = await client.get(HISTORY, params={"user_id": "bob"}, headers=auth(user_token("alice")))
    assert [e["amount"] for e in r.json()["data"]] == [5, 10]
    r = await client.get(BALANCE, params={"user_id": "bob"}, headers=auth(user_token("alice")))
    assert r.json()["user_id"] == "alice"
    assert r.json()["wallets"]["points"]["balance"] == 15


async def test_history_pagination(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    for amount in range(1, 6):
        await credit(client, key, "u1", amount)
    headers = auth(user_token("u1"))
    r = await client.get(HISTORY, params={"limit": 3}, headers=headers)
    page = r.json()
    assert [e["amount"] for e in page["data"]] == [5, 4, 3]
    assert page["next_cursor"]
    r = await client.get(HISTORY, params={"limit": 3, "cursor": page["next_cursor"]},
                         headers=headers)
    page = r.json()
    assert [e["amount"] for e in page["data"]] == [2, 1]
    assert page["next_cursor"] is None


async def test_currency_filter(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await credit(client, key, "u1", 1, "points")
    await credit(client, key, "u1", 2, "usdt")
    await credit(client, key, "u1", 3, "diamonds")
    headers = auth(user_token("u1"))
    r = await client.get(HISTORY, params={"currency": "usdt"}, headers=headers)
    assert r.status_code == 200
    assert [(e["currency"], e["amount"]) for e in r.json()["data"]] == [("usdt", 2)]
    r = await client.get(HISTORY, headers=headers)
    assert [e["currency"] for e in r.json()["data"]] == ["diamonds", "usdt", "points"]


async def test_unknown_currency(client: httpx.AsyncClient) -> None:
    r = await client.get(HISTORY, params={"currency": "gold"}, headers=auth(user_token("u1")))
    assert r.status_code == 422
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == "unknown_currency"


async def test_bad_query_parameters(client: httpx.AsyncClient) -> None:
    headers = auth(user_token("u1"))
    for params in ({"limit": 101}, {"limit": 0}, {"limit": -1}, {"limit": "ten"},
                   {"cursor": "garbage!!"}, {"cursor": "not-a-cursor"},
                   {"cursor": base64.urlsafe_b64encode(b"x123").decode()},
                   {"cursor": "c" * 65}, {"currency": "x" * 17}):
        r = await client.get(HISTORY, params=params, headers=headers)
        assert r.status_code == 422, (params, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
        assert r.json()["code"] == "validation_error", params
    r = await client.get(HISTORY, params={"limit": 100}, headers=headers)
    assert r.status_code == 200
    r = await client.get(HISTORY, params={"limit": 1}, headers=headers)
    assert r.status_code == 200


# --- bad tokens ----------------------------------------------------------------------------


async def test_missing_or_wrong_scheme(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic xyz"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer "}, {"Authorization": "Token abc"},
                    {"Authorization": f"Basic {user_token('u1')}"},
                    {"Authorization": "Bearer not.a.jwt"}):
        for path in (BALANCE, HISTORY):
            assert_unauthorized(await client.get(path, headers=headers))


async def test_expired_token(client: httpx.AsyncClient) -> None:
    token = issue_hs256(TEST_JWT_SECRET, "u1", ttl_s=-3600)
    assert_unauthorized(await client.get(BALANCE, headers=auth(token)))
    assert "expired" in (await client.get(HISTORY, headers=auth(token))).json()["detail"]
    # Inside the leeway still counts as valid.
    fresh = issue_hs256(TEST_JWT_SECRET, "u1", ttl_s=-5)
    assert (await client.get(BALANCE, headers=auth(fresh))).status_code == 200


async def test_alg_none(client: httpx.AsyncClient) -> None:
    token = jwt.encode(claims("u1"), None, algorithm="none")  # type: ignore[arg-type]
    assert_unauthorized(await client.get(BALANCE, headers=auth(token)))
    by_hand = f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(claims('u1'))}."
    assert_unauthorized(await client.get(BALANCE, headers=auth(by_hand)))
    upper = f"{b64url_json({'alg': 'None'})}.{b64url_json(claims('u1'))}."
    assert_unauthorized(await client.get(BALANCE, headers=auth(upper)))


async def test_wrong_secret(client: httpx.AsyncClient) -> None:
    token = issue_hs256("another-secret-entirely-0123456789abcdef", "u1")
    assert_unauthorized(await client.get(BALANCE, headers=auth(token)))
    assert_unauthorized(await client.get(HISTORY, headers=auth(token)))


async def test_tampered_payload(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    key = await make_key()
    await credit(client, key, "victim", 1000)
    header, _payload, signature = user_token("attacker").split(".")
    forged = f"{header}.{b64url_json(claims('victim'))}.{signature}"
    assert_unauthorized(await client.get(BALANCE, headers=auth(forged)))
    assert_unauthorized(await client.get(HISTORY, headers=auth(forged)))
    # Tampered signature, too.
    good = user_token("victim")
    flipped = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    assert_unauthorized(await client.get(BALANCE, headers=auth(flipped)))
    assert (await client.get(BALANCE, headers=auth(good))).status_code == 200


async def test_token_claims(client: httpx.AsyncClient) -> None:
    secret = TEST_JWT_SECRET.encode()
    now = int(time.time())
    bad_claims = [
        {"exp": now + 3600},  # no sub
        {"sub": "u1"},  # no exp
        {"sub": "", "exp": now + 3600},
        {"sub": "a:b", "exp": now + 3600},
        {"sub": "x" * 129, "exp": now + 3600},
        {"sub": 12345, "exp": now + 3600},
        {"sub": "u1", "exp": now + 3600, "nbf": now + 3600},
    ]
    for payload in bad_claims:
        token = hmac_jwt(payload, secret)
        assert_unauthorized(await client.get(BALANCE, headers=auth(token)))
    ok = hmac_jwt({"sub": "u1", "exp": now + 3600}, secret)
    r = await client.get(BALANCE, headers=auth(ok))
    assert r.status_code == 200, r.text
    assert r.json()["user_id"] == "u1"
    # Another HMAC algorithm than the configured one is refused even with the right secret.
    hs512 = hmac_jwt({"sub": "u1", "exp": now + 3600}, secret, alg="HS512")
    assert_unauthorized(await client.get(BALANCE, headers=auth(hs512)))


async def test_no_jwt_configured_refuses_every_token(db_url: str) -> None:
    async with custom_client(db_url) as c:
        assert_unauthorized(await c.get(BALANCE, headers=auth(user_token("u1"))))


async def test_issuer_and_audience(db_url: str) -> None:
    async with custom_client(db_url, jwt_secret=TEST_JWT_SECRET,
                             jwt_issuer="https://auth.example", jwt_audience="coinpurse") as c:
        good = issue_hs256(TEST_JWT_SECRET, "u1", iss="https://auth.example", aud="coinpurse")
        r = await c.get(BALANCE, headers=auth(good))
        assert r.status_code == 200, r.text
        assert r.json()["user_id"] == "u1"
        good_list_aud = issue_hs256(TEST_JWT_SECRET, "u1", iss="https://auth.example",
                                    aud=["other", "coinpurse"])
        assert (await c.get(BALANCE, headers=auth(good_list_aud))).status_code == 200
        for bad in (
            issue_hs256(TEST_JWT_SECRET, "u1", iss="https://evil.example", aud="coinpurse"),
            issue_hs256(TEST_JWT_SECRET, "u1", iss="https://auth.example", aud="other"),
            issue_hs256(TEST_JWT_SECRET, "u1", aud="coinpurse"),  # no iss
            issue_hs256(TEST_JWT_SECRET, "u1", iss="https://auth.example"),  # no aud
            issue_hs256(TEST_JWT_SECRET, "u1"),
        ):
            assert_unauthorized(await c.get(BALANCE, headers=auth(bad)))
            assert_unauthorized(await c.get(HISTORY, headers=auth(bad)))


def _rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public_pem


async def test_rs256_public_key_mode(db_url: str) -> None:
    private, public_pem = _rsa_pair()
    other_private, _ = _rsa_pair()
    async with custom_client(db_url, jwt_public_key=public_pem) as c:
        good = jwt.encode(claims("u1"), private, algorithm="RS256")
        r = await c.get(BALANCE, headers=auth(good))
        assert r.status_code == 200, r.text
        assert r.json()["user_id"] == "u1"
        assert (await c.get(HISTORY, headers=auth(good))).status_code == 200
        # Algorithm confusion: HS256 signed with the public key text as the secret.
        confused = hmac_jwt(claims("u1"), public_pem.encode())
        assert_unauthorized(await c.get(BALANCE, headers=auth(confused)))
        assert_unauthorized(await c.get(HISTORY, headers=auth(confused)))
        # Signed by another key, an HS256 token, alg none, expired.
        assert_unauthorized(await c.get(
            BALANCE, headers=auth(jwt.encode(claims("u1"), other_private, algorithm="RS256"))))
        assert_unauthorized(await c.get(BALANCE, headers=auth(user_token("u1"))))
        none = f"{b64url_json({'alg': 'none'})}.{b64url_json(claims('u1'))}."
        assert_unauthorized(await c.get(BALANCE, headers=auth(none)))
        expired = jwt.encode(claims("u1", exp=int(time.time()) - 3600), private,
                             algorithm="RS256")
        assert_unauthorized(await c.get(BALANCE, headers=auth(expired)))


async def test_public_key_takes_precedence_over_secret(db_url: str) -> None:
    private, public_pem = _rsa_pair()
    async with custom_client(db_url, jwt_public_key=public_pem,
                             jwt_secret=TEST_JWT_SECRET) as c:
        assert_unauthorized(await c.get(BALANCE, headers=auth(user_token("u1"))))
        good = jwt.encode(claims("u1"), private, algorithm="RS256")
        assert (await c.get(BALANCE, headers=auth(good))).status_code == 200
