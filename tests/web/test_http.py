"""The pages and the browser session over plain HTTP (no browser), on SQLite and PostgreSQL:
the CSP and other headers, cookie flags, CSRF refusals, sign-out, and the API routes the
pages added (daily stats, pending counts, CSV export, gift quotes, withdrawal limits)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pyotp
import pytest
from asgi_lifespan import LifespanManager

from coinpurse.app import create_app
from coinpurse.auth import accounts, repository
from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from coinpurse.web.service import ASSETS, BUILD
from tests.conftest import TEST_JWT_SECRET, MakeKey, auth

PASSWORD = "correct-horse-battery"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                    currencies="points:0,usdt:2,diamonds:0", auth="builtin",
                    withdrawal_currencies="points:10:5000",
                    rate_limit_login="1000/minute", rate_limit_login_ip="1000/minute")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


def browser(app: Any, scheme: str = "http") -> httpx.AsyncClient:
    """A client that keeps cookies, as a browser does."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                             base_url=f"{scheme}://test")


async def make_user(settings: Settings, user_id: str, role: str = "user",
                    totp: bool = False) -> str | None:
    engine = create_engine(settings.database_url, pool_size=1)
    secret = pyotp.random_base32() if totp else None
    address, hashed = await accounts.hash_new_password(f"{user_id}@example.com", PASSWORD)
    try:
        async with engine.begin() as conn:
            await accounts.create_user(conn, address, hashed, role, user_id=user_id)
            if secret:
                await repository.set_totp_secret(conn, user_id, secret)
                await repository.enable_totp(conn, user_id, ())
    finally:
        await engine.dispose()
    return secret


async def sign_in(c: httpx.AsyncClient, user_id: str, secret: str | None = None
                  ) -> httpx.Response:
    body = {"email": f"{user_id}@example.com", "password": PASSWORD}
    if secret:
        body["totp_code"] = pyotp.TOTP(secret).now()
    r = await c.post("/api/v1/auth/session", json=body)
    assert r.status_code == 200, r.text
    return r


def csrf(c: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": c.cookies["cp_csrf"]}


async def credit(client: httpx.AsyncClient, key: str, user_id: str, amount: int,
                 currency: str = "points", description: str = "Top prize") -> None:
    r = await client.post("/internal/v1/wallet/credit", headers={
        "X-API-Key": key, "Idempotency-Key": f"credit-{user_id}-{amount}-{description}"},
        json={"user_id": user_id, "currency": currency, "amount": amount,
              "description": description, "reference_id": f"ref-{user_id}"})
    assert r.status_code == 201, r.text


async def balance(c: httpx.AsyncClient, headers: dict[str, str] | None = None) -> int:
    r = await c.get("/api/v1/wallet/balance", headers=headers)
    assert r.status_code == 200, r.text
    return int(r.json()["wallets"]["points"]["balance"])


# ---------------------------------------------------------------- pages and headers


async def test_root_leads_to_the_wallet(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 302
    assert r.headers["location"] == "/wallet"


@pytest.mark.parametrize("path", ["/wallet", "/wallet/gift", "/console", "/console/keys"])
async def test_pages_carry_a_strict_csp_and_no_inline_script(client: httpx.AsyncClient,
                                                             path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    html = r.text
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None  # no inline script
    assert re.search(r"\son[a-z]+\s*=", html) is None  # no inline event handler
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere
    assert f"/static/{BUILD}/" in html


async def test_assets_are_ours_cached_and_never_build_html(client: httpx.AsyncClient) -> None:
    assert {"wallet.js", "console.js", "app.css", "dom.js", "api.js"} <= set(ASSETS)
    for name in ASSETS:
        r = await client.get(f"/static/{BUILD}/{name}")
        assert r.status_code == 200
        assert "immutable" in r.headers["cache-control"]
        assert "content-security-policy" in r.headers
        if name.endswith(".js"):
            assert r.headers["content-type"].startswith("text/javascript")
            # User text only ever goes into text nodes: no HTML parsing sinks at all.
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                         "eval(", "new Function"):
                assert sink not in r.text, (name, sink)
            assert "http://" not in r.text.replace("http://www.w3.org/2000/svg", "")
    stale = await client.get(f"/static/0123456789ab/{next(iter(ASSETS))}")
    assert stale.headers["cache-control"] == "no-cache"
    missing = await client.get(f"/static/{BUILD}/nope.js")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


async def test_topup_return_leads_to_the_wallet_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/topup-return?order_id=abc&status=success&payment_id=p&signature=s")
    assert r.status_code == 303
    assert r.headers["location"] == (
        "/wallet/topup-return?order_id=abc&status=success&payment_id=p&signature=s")


# ---------------------------------------------------------------- the browser session


def set_cookies(r: httpx.Response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in r.headers.get_list("set-cookie")}


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_session_cookies_flags(app: Any, settings: Settings, scheme: str) -> None:
    await make_user(settings, "ann")
    async with browser(app, scheme) as c:
        r = await sign_in(c, "ann")
    body = r.json()
    assert body["user"]["id"] == "ann" and body["mfa"] is False
    assert "access_token" not in body and "refresh_token" not in body  # JavaScript never sees them
    cookies = set_cookies(r)
    session, refresh, token = cookies["cp_session"], cookies["cp_refresh"], cookies["cp_csrf"]
    for header in (session, refresh, token):
        assert "samesite=strict" in header.lower()
        assert ("; secure" in header.lower()) == (scheme == "https")
    assert "httponly" in session.lower() and "path=/;" in session.lower() + ";"
    assert "httponly" in refresh.lower() and "path=/api/v1/auth/session" in refresh.lower()
    assert "httponly" not in token.lower()  # the page reads it to echo it


async def test_cookie_session_reads_and_writes_with_csrf(app: Any, settings: Settings,
                                                         client: httpx.AsyncClient,
                                                         make_key: MakeKey) -> None:
    await make_user(settings, "ann")
    await make_user(settings, "ben")
    key = await make_key()
    await credit(client, key, "ann", 100)
    async with browser(app) as c:
        await sign_in(c, "ann")
        assert await balance(c) == 100  # reads need no CSRF token
        gift = {"to_user_id": "ben", "amount": 10, "currency": "points"}
        no_token = await c.post("/api/v1/gifts", json=gift, headers={"Idempotency-Key": "g1"})
        assert no_token.status_code == 403
        assert no_token.headers["content-type"] == "application/problem+json"
        assert no_token.json()["code"] == "csrf_failed"
        wrong = await c.post("/api/v1/gifts", json=gift,
                             headers={"Idempotency-Key": "g1", "X-CSRF-Token": "x" * 43})
        assert wrong.json()["code"] == "csrf_failed"
        # A planted pair (cookie and header agree, but not this session's token) is refused.
        real = c.cookies["cp_csrf"]
        c.cookies.set("cp_csrf", "planted", domain="test.local")
        planted = await c.post("/api/v1/gifts", json=gift,
                               headers={"Idempotency-Key": "g1", "X-CSRF-Token": "planted"})
        assert planted.json()["code"] == "csrf_failed"
        assert await balance(c) == 100  # nothing moved
        c.cookies.set("cp_csrf", real, domain="test.local")
        ok = await c.post("/api/v1/gifts", json=gift,
                          headers={"Idempotency-Key": "g1", **csrf(c)})
        assert ok.status_code == 201, ok.text
        assert await balance(c) == 90


async def test_bearer_callers_need_no_csrf_token(app: Any, settings: Settings,
                                                 client: httpx.AsyncClient,
                                                 make_key: MakeKey) -> None:
    await make_user(settings, "ann")
    await make_user(settings, "ben")
    await credit(client, await make_key(), "ann", 50)
    login = await client.post("/api/v1/auth/login", json={"email": "ann@example.com",
                                                          "password": PASSWORD})
    token = login.json()["access_token"]
    async with browser(app) as c:
        await sign_in(c, "ben")  # a cookie session of someone else is ignored beside a Bearer
        r = await c.post("/api/v1/gifts", headers={**auth(token), "Idempotency-Key": "b1"},
                         json={"to_user_id": "ben", "amount": 5, "currency": "points"})
        assert r.status_code == 201, r.text
        assert r.json()["from_user_id"] == "ann"


async def test_sign_out_ends_the_session_at_once(app: Any, settings: Settings) -> None:
    await make_user(settings, "ann")
    async with browser(app) as c:
        await sign_in(c, "ann")
        old = dict(c.cookies.items())
        refused = await c.post("/api/v1/auth/session/logout")  # without the CSRF token
        assert refused.json()["code"] == "csrf_failed"
        assert (await c.get("/api/v1/me")).status_code == 200
        out = await c.post("/api/v1/auth/session/logout", headers=csrf(c))
        assert out.status_code == 204
        cleared = set_cookies(out)
        assert {"cp_session", "cp_refresh", "cp_csrf"} <= set(cleared)
        assert all("max-age=0" in v.lower() or "expires=" in v.lower() for v in cleared.values())
    async with browser(app) as stale:  # the old cookies, kept by a thief
        for name, value in old.items():
            stale.cookies.set(name, value, domain="test.local")
        r = await stale.get("/api/v1/wallet/balance")
        assert r.status_code == 401
        assert r.json()["code"] == "unauthorized"
        again = await stale.post("/api/v1/auth/session/refresh",
                                 headers={"X-CSRF-Token": old["cp_csrf"]})
        assert again.status_code == 401


async def test_refresh_rotates_and_reuse_ends_the_session(app: Any, settings: Settings) -> None:
    await make_user(settings, "ann")
    async with browser(app) as c:
        await sign_in(c, "ann")
        first_refresh = c.cookies["cp_refresh"]
        r = await c.post("/api/v1/auth/session/refresh", headers=csrf(c))
        assert r.status_code == 200, r.text
        assert c.cookies["cp_refresh"] != first_refresh
        assert (await c.get("/api/v1/me")).json()["id"] == "ann"
        no_csrf = await c.post("/api/v1/auth/session/refresh")
        assert no_csrf.json()["code"] == "csrf_failed"
        # Someone replays the first refresh token: the whole sign-in ends.
        async with browser(app) as thief:
            thief.cookies.set("cp_refresh", first_refresh, domain="test.local",
                              path="/api/v1/auth/session")
            thief.cookies.set("cp_csrf", c.cookies["cp_csrf"], domain="test.local")
            reused = await thief.post("/api/v1/auth/session/refresh", headers=csrf(c))
            assert reused.json()["code"] == "refresh_token_reused"
        assert (await c.get("/api/v1/me")).status_code == 401


async def test_cookies_count_only_with_builtin_accounts(settings: Settings) -> None:
    app = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60):
        await make_user(settings, "ann")
        async with browser(app) as c:
            await sign_in(c, "ann")
            cookies = dict(c.cookies.items())
    external = create_app(settings.model_copy(update={"auth": "external"}))
    async with LifespanManager(external), browser(external) as c:
        for name, value in cookies.items():
            c.cookies.set(name, value, domain="test.local")
        assert (await c.get("/api/v1/me")).status_code == 401
        r = await c.post("/api/v1/auth/session", json={"email": "ann@example.com",
                                                        "password": PASSWORD})
        assert r.status_code == 404


async def test_admin_console_session_needs_2fa(app: Any, settings: Settings) -> None:
    secret = await make_user(settings, "boss", role="auditor", totp=True)
    assert secret is not None
    async with browser(app) as c:
        r = await c.post("/api/v1/auth/session", json={"email": "boss@example.com",
                                                        "password": PASSWORD})
        assert r.json()["code"] == "mfa_required"
        assert "cp_session" not in c.cookies
        await sign_in(c, "boss", secret)
        assert (await c.get("/admin/v1/stats/pending")).status_code == 200
        # An auditor's cookie session reads, and is refused any change (with a valid token).
        r = await c.post("/admin/v1/keys", headers=csrf(c),
                         json={"service": "games", "scopes": ["wallet:read"]})
        assert r.status_code == 403
        assert r.json()["code"] == "forbidden"


async def test_enrolment_returns_a_qr_code_made_here(app: Any, settings: Settings) -> None:
    await make_user(settings, "ann")
    async with browser(app) as c:
        await sign_in(c, "ann")
        r = await c.post("/api/v1/auth/2fa/enroll", headers=csrf(c))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["qr_code"].startswith("data:image/svg+xml")
    import segno

    assert out["qr_code"] == segno.make(out["otpauth_uri"], error="m").svg_data_uri(
        scale=4, border=2, dark="#000", light="#fff")
    assert out["secret"] in out["otpauth_uri"]


# ---------------------------------------------------------------- API routes for the pages


async def test_daily_stats_and_pending(app: Any, settings: Settings, client: httpx.AsyncClient,
                                       make_key: MakeKey) -> None:
    secret = await make_user(settings, "boss", role="admin", totp=True)
    await make_user(settings, "ann")
    await make_user(settings, "ben")
    key = await make_key()
    await credit(client, key, "ann", 1000)
    await credit(client, key, "ann", 250, currency="usdt")
    async with browser(app) as ann:
        await sign_in(ann, "ann")
        r = await ann.post("/api/v1/gifts", headers={"Idempotency-Key": "g", **csrf(ann)},
                           json={"to_user_id": "ben", "amount": 100, "currency": "points"})
        assert r.status_code == 201
        forbidden = await ann.get("/admin/v1/stats/daily")
        assert forbidden.status_code == 403
    async with browser(app) as c:
        await sign_in(c, "boss", secret)
        r = await c.get("/admin/v1/stats/daily", params={"days": 7})
        assert r.status_code == 200, r.text
        out = r.json()
        today = datetime.now(UTC).date().isoformat()
        assert len(out["days"]) == 7 and out["days"][-1] == today
        volume = {(v["date"], v["currency"], v["kind"]): (v["count"], v["amount"])
                  for v in out["volume"]}
        assert volume[(today, "points", "credit")] == (1, 1000)
        assert volume[(today, "usdt", "credit")] == (1, 250)
        assert volume[(today, "points", "gift")] == (1, 100)
        assert out["fees"] == [{"date": today, "currency": "points", "amount": 20}]
        only = (await c.get("/admin/v1/stats/daily", params={"currency": "usdt"})).json()
        assert {v["currency"] for v in only["volume"]} == {"usdt"} and only["fees"] == []
        for bad in ({"days": 0}, {"days": 367}, {"days": "x"}):
            refused = await c.get("/admin/v1/stats/daily", params=bad)
            assert refused.status_code == 422
            assert refused.json()["code"] == "validation_error"
        unknown = await c.get("/admin/v1/stats/daily", params={"currency": "gold"})
        assert unknown.json()["code"] == "unknown_currency"
        pending = (await c.get("/admin/v1/stats/pending")).json()
        assert pending == {"withdrawals": 0, "kyc_submissions": 0, "adjustments": 0}


async def test_csv_export_follows_the_search(app: Any, settings: Settings,
                                             client: httpx.AsyncClient,
                                             make_key: MakeKey) -> None:
    secret = await make_user(settings, "boss", role="auditor", totp=True)
    key = await make_key()
    await credit(client, key, "ann", 7, description="=HYPERLINK(\"http://x\")")
    await credit(client, key, "ann", 9, currency="usdt", description="plain, with \"quotes\"")
    await credit(client, key, "other", 11)
    async with browser(app) as c:
        await sign_in(c, "boss", secret)
        r = await c.get("/admin/v1/transactions/export.csv", params={"user_id": "ann"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [(x["currency"], x["amount"]) for x in rows] == [("usdt", "9"), ("points", "7")]
        assert rows[1]["description"] == "'=HYPERLINK(\"http://x\")"
        assert rows[0]["description"] == "plain, with \"quotes\""
        limited = await c.get("/admin/v1/transactions/export.csv", params={"limit": 1})
        assert len(list(csv.DictReader(io.StringIO(limited.text)))) == 1
        bad = await c.get("/admin/v1/transactions/export.csv", params={"limit": 0})
        assert bad.status_code == 422
        wrong = await c.get("/admin/v1/transactions/export.csv", params={"currency": "gold"})
        assert wrong.json()["code"] == "unknown_currency"


async def test_gift_quote_matches_the_gift_and_moves_nothing(
        app: Any, settings: Settings, client: httpx.AsyncClient, make_key: MakeKey) -> None:
    await make_user(settings, "ann")
    await make_user(settings, "ben")
    key = await make_key()
    await credit(client, key, "ann", 100)
    r = await client.put("/internal/v1/users/ben/agency", headers={"X-API-Key": key},
                         json={"agency_id": "a7"})
    assert r.status_code == 200
    body = {"to_user_id": "ben", "amount": 15, "currency": "points", "message": "hi"}
    async with browser(app) as c:
        await sign_in(c, "ann")
        q = await c.post("/api/v1/gifts/quote", json=body, headers=csrf(c))
        assert q.status_code == 200, q.text
        assert q.json() == {"to_user_id": "ben", "gift_type": None, "currency": "points",
                            "amount": 15, "receiver_amount": 11, "agency_commission": 1,
                            "platform_fee": 3}
        assert await balance(c) == 100
        sent = (await c.post("/api/v1/gifts", json=body,
                             headers={"Idempotency-Key": "q1", **csrf(c)})).json()
        assert (sent["receiver_amount"], sent["agency_commission"], sent["platform_fee"]) == (
            11, 1, 3)
        for bad, reason in (({**body, "to_user_id": "ann"}, "self_gift"),
                            ({**body, "to_user_id": "nobody"}, "unknown_recipient")):
            refused = await c.post("/api/v1/gifts/quote", json=bad, headers=csrf(c))
            assert refused.status_code == 422
            assert refused.json()["reason"] == reason


async def test_withdrawal_limits_explain_the_tier(app: Any, settings: Settings,
                                                  client: httpx.AsyncClient) -> None:
    await make_user(settings, "ann")
    async with browser(app) as c:
        await sign_in(c, "ann")
        r = await c.get("/api/v1/withdrawals/limits")
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["tier"] == 0 and out["allowed"] is False and out["required_tier"] == 1
        assert out["debt"] == 0
        assert out["currencies"] == [{"currency": "points", "min_amount": 10,
                                      "max_amount": 5000,
                                      "daily": {"limit": None, "used": 0},
                                      "monthly": {"limit": None, "used": 0}}]
        cur = (await c.get("/api/v1/currencies")).json()["data"]
        assert cur == [
            {"code": "points", "scale": 0, "giftable": True, "sellable": True},
            {"code": "usdt", "scale": 2, "giftable": True, "sellable": True},
            {"code": "diamonds", "scale": 0, "giftable": True, "sellable": True}]
    assert (await client.get("/api/v1/withdrawals/limits")).status_code == 401
