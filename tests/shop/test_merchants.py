"""The merchant role: built-in registration, external tokens' role claim, the CLI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import jwt
from asgi_lifespan import LifespanManager

from coinpurse.app import create_app
from coinpurse.config import Settings
from tests.conftest import TEST_JWT_SECRET, auth, user_token
from tests.test_cli import run

PASSWORD = "a long merchant password"


def _builtin(db_url: str) -> Any:
    return create_app(Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                               auth="builtin", rate_limit_login="off",
                               rate_limit_login_ip="off"))


async def _sign_in(c: httpx.AsyncClient, email: str) -> dict[str, Any]:
    r = await c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def _sell(c: httpx.AsyncClient, token: str) -> httpx.Response:
    return await c.post("/api/v1/products", headers=auth(token), json={
        "name": "Hat", "price": 5, "currency": "points", "stock": 1})


async def test_registering_as_a_merchant(db_url: str) -> None:
    async with LifespanManager(app := _builtin(db_url)), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for email, kind in (("shop@example.com", "merchant"), ("buyer@example.com", None)):
            body = {"email": email, "password": PASSWORD}
            if kind:
                body["account_type"] = kind
            r = await c.post("/api/v1/auth/register", json=body)
            assert r.status_code == 202, r.text
        merchant = await _sign_in(c, "shop@example.com")
        assert merchant["user"]["role"] == "merchant"
        assert (await _sell(c, merchant["access_token"])).status_code == 201
        buyer = await _sign_in(c, "buyer@example.com")
        assert buyer["user"]["role"] == "user"
        refused = await _sell(c, buyer["access_token"])
        assert refused.status_code == 403 and refused.json()["reason"] == "merchant_required"
        me = await c.get("/api/v1/me", headers=auth(merchant["access_token"]))
        assert me.json()["role"] == "merchant"

        for kind in ("admin", "auditor", "MERCHANT", 1, None):
            r = await c.post("/api/v1/auth/register", json={
                "email": "x@example.com", "password": PASSWORD, "account_type": kind})
            assert r.status_code == 422 and r.json()["code"] == "validation_error"
        # Registering an existing e-mail again changes nothing, not even its role.
        await c.post("/api/v1/auth/register", json={
            "email": "buyer@example.com", "password": PASSWORD, "account_type": "merchant"})
        assert (await _sign_in(c, "buyer@example.com"))["user"]["role"] == "user"


async def test_external_tokens_carry_the_role(client: httpx.AsyncClient) -> None:
    assert (await _sell(client, user_token("m1", role="merchant"))).status_code == 201
    assert (await _sell(client, user_token("u1"))).status_code == 403
    # An unknown role is a plain user.
    assert (await _sell(client, user_token("u2", role="superuser"))).status_code == 403


def test_cli_token_role(db_url: str) -> None:
    out = run(db_url, "token", "--user", "shop-7", "--role", "merchant")
    assert out.returncode == 0, out.stderr
    claims = jwt.decode(out.stdout.strip(), TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "shop-7" and claims["role"] == "merchant"
    plain = jwt.decode(run(db_url, "token", "--user", "u1").stdout.strip(), TEST_JWT_SECRET,
                       algorithms=["HS256"])
    assert "role" not in plain
    bad = run(db_url, "token", "--user", "u1", "--role", "owner")
    assert bad.returncode == 2 and "owner" in bad.stderr


def test_cli_admin_create_merchant(db_url: str) -> None:
    made = run(db_url, "admin", "create", "--email", "Shop@Example.com", "--role", "merchant",
               "--json", COINPURSE_AUTH="builtin", COINPURSE_ADMIN_PASSWORD=PASSWORD)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["role"] == "merchant"

    async def sell() -> None:
        async with LifespanManager(app := _builtin(db_url)), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            session = await _sign_in(c, "shop@example.com")
            assert session["user"]["role"] == "merchant"
            assert (await _sell(c, session["access_token"])).status_code == 201
            stats = await c.get("/admin/v1/stats", headers=auth(session["access_token"]))
            assert stats.status_code == 403  # a merchant is no admin

    asyncio.run(sell())
