"""Browser tests: Debian's chromium, headless, driven by Playwright, against a real
``coinpurse serve`` subprocess. One server and one browser per module; each test gets fresh
browser contexts (cookies apart) and fresh users, so tests do not depend on each other."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from coinpurse.auth import accounts, keys, repository
from coinpurse.core.db import create_engine
from tests.conftest import Server

CHROMIUM = os.environ.get("COINPURSE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-default-apps",
                 "--disable-features=Translate,OptimizationHints,MediaRouter"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "browser-test-password"
_ids = itertools.count(1)


@dataclass
class Site:
    """The running server, a service key, and helpers to make users with money."""

    server: Server
    db_url: str
    key: str
    admin_secret: str
    auditor_secret: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.server.base_url, timeout=10)

    @property
    def base(self) -> str:
        return self.server.base_url

    def user(self, points: int = 0, prefix: str = "u", role: str = "user") -> str:
        """A new built-in account (id = e-mail's local part), credited with points."""
        user_id = f"{prefix}{next(_ids)}"
        run(_create(self.db_url, user_id, role))
        if points:
            self.credit(user_id, points)
        return user_id

    def credit(self, user_id: str, points: int) -> None:
        r = self.http.post("/internal/v1/wallet/credit", headers={
            "X-API-Key": self.key, "Idempotency-Key": f"seed-{user_id}-{points}"},
            json={"user_id": user_id, "currency": "points", "amount": points,
                  "description": "Welcome", "reference_id": f"seed-{user_id}"})
        assert r.status_code == 201, r.text

    def token(self, user_id: str, secret: str | None = None) -> str:
        body: dict[str, Any] = {"email": email(user_id), "password": PASSWORD}
        if secret:
            body["totp_code"] = pyotp.TOTP(secret).now()
        r = self.http.post("/api/v1/auth/login", json=body)
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token

    def balance(self, user_id: str) -> int:
        r = self.http.get("/api/v1/wallet/balance", headers=bearer(self.token(user_id)))
        return int(r.json()["wallets"]["points"]["balance"])


def run(coro: Any) -> Any:
    """Run a coroutine to the end in a thread of its own: Playwright's sync API keeps an
    event loop running in the test's thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def email(user_id: str) -> str:
    return f"{user_id}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _create(db_url: str, user_id: str, role: str, totp: bool = False) -> str | None:
    engine = create_engine(db_url, pool_size=1)
    secret = pyotp.random_base32() if totp else None
    address, hashed = await accounts.hash_new_password(email(user_id), PASSWORD)
    try:
        async with engine.begin() as conn:
            await accounts.create_user(conn, address, hashed, role, user_id=user_id)
            if secret:
                await repository.set_totp_secret(conn, user_id, secret)
                await repository.enable_totp(conn, user_id, ())
    finally:
        await engine.dispose()
    return secret


async def _key(db_url: str) -> str:
    engine = create_engine(db_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            _, secret = await keys.create_key(conn, "games", "*")
    finally:
        await engine.dispose()
    return secret


@pytest.fixture(scope="module")
def site(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    path = tmp_path_factory.mktemp("web") / "coinpurse.db"
    shutil.copy(sqlite_template, path)
    db_url = f"sqlite:///{path}"
    admin_secret = run(_create(db_url, "admin", "admin", totp=True))
    auditor_secret = run(_create(db_url, "auditor", "auditor", totp=True))
    assert admin_secret and auditor_secret
    key = run(_key(db_url))
    # coinpurse serve points the public URL (checkout and return links) at its own port.
    server = Server(db_url, extra_env={
        "COINPURSE_AUTH": "builtin",
        "COINPURSE_WITHDRAWAL_CURRENCIES": "points:10",
        "COINPURSE_RATE_LIMIT_LOGIN": "10000/minute",
        "COINPURSE_RATE_LIMIT_LOGIN_IP": "10000/minute",
        "COINPURSE_RATE_LIMIT_IP": "100000/minute",
    })
    s = Site(server, db_url, key, admin_secret, auditor_secret)
    try:
        yield s
    finally:
        s.http.close()
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Pages:
    """New browser contexts (each its own cookies), every request and page error recorded."""

    def __init__(self, browser: Any, site: Site) -> None:
        self.browser = browser
        self.site = site
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.contexts: list[Any] = []

    def new(self, width: int = 1280, height: int = 900) -> Any:
        context = self.browser.new_context(viewport={"width": width, "height": height},
                                           service_workers="block")
        context.set_default_timeout(10_000)
        context.on("request", lambda r: self.requests.append(r.url))
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page

    def close(self) -> None:
        for c in self.contexts:
            c.close()


@pytest.fixture
def pages(browser: Any, site: Site) -> Iterator[Pages]:
    p = Pages(browser, site)
    yield p
    p.close()
    assert p.errors == []  # no script error on any page of the test


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
