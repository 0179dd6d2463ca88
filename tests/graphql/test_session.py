"""The web wallet's browser session works for GraphQL as for REST: the cookie names the
caller, and a POST (which may be a mutation) needs the CSRF header."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from coinpurse.app import create_app
from coinpurse.auth import accounts
from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from tests.conftest import MakeKey
from tests.graphql.conftest import Gql, codes, fund
from tests.web.test_http import PASSWORD, browser, sign_in


@pytest.fixture
def settings(db_url: str) -> Settings:
    from tests.conftest import TEST_JWT_SECRET

    return Settings(database_url=db_url, jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
                    currencies="points:0", auth="builtin", rate_limit_login="1000/minute",
                    rate_limit_login_ip="1000/minute")


async def make_user(settings: Settings, user_id: str) -> None:
    email, password_hash = await accounts.hash_new_password(f"{user_id}@example.com",
                                                            PASSWORD)
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await accounts.create_user(conn, email, password_hash, user_id=user_id)
    finally:
        await engine.dispose()


GIFT = """mutation { sendGift(input: {toUserId: "ben", amount: 10, currency: "points"},
                              idempotencyKey: "g1") { replayed gift { amount } } }"""


async def test_the_session_cookie_with_its_csrf_header(settings: Settings,
                                                       make_key: MakeKey) -> None:
    app: Any = create_app(settings)
    async with LifespanManager(app, shutdown_timeout=60):
        await make_user(settings, "ann")
        await make_user(settings, "ben")
        async with browser(app) as c:
            await fund(c, await make_key(), "ann", 100)
            await sign_in(c, "ann")
            gql = Gql(c)
            read = await c.get("/graphql", params={"query": "{ me { userId } }"})
            assert read.json() == {"data": {"me": {"userId": "ann"}}}  # GET: no CSRF needed
            refused = await gql(GIFT)
            assert codes(refused) == ["csrf_failed"]
            assert refused["errors"][0]["extensions"]["status"] == 403
            done = await gql(GIFT, headers={"X-CSRF-Token": c.cookies["cp_csrf"]})
            assert done["data"]["sendGift"] == {"replayed": False, "gift": {"amount": 10}}
            me = await gql("{ me { wallets { balance } } }",
                           headers={"X-CSRF-Token": c.cookies["cp_csrf"]})
            assert me["data"]["me"]["wallets"] == [{"balance": 90}]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as stranger:
            assert codes(await Gql(stranger)("{ me { userId } }")) == ["unauthorized"]
