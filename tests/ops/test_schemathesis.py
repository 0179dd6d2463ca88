"""Real answers match the OpenAPI document: schemathesis generates requests for every
operation (with a service key, a user token or an admin token, by path) against a real
``coinpurse serve`` on each database, and checks that no answer is a 5xx and that every
answer matches its documented schema and content type."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from tests.conftest import Server, auth, user_token

ENV = {
    "COINPURSE_AUTH": "builtin", "COINPURSE_RATE_LIMIT_USER": "off",
    "COINPURSE_RATE_LIMIT_IP": "off", "COINPURSE_RATE_LIMIT_LOGIN": "off",
    "COINPURSE_RATE_LIMIT_LOGIN_IP": "off", "COINPURSE_WITHDRAWAL_CURRENCIES": "points",
    "COINPURSE_METRICS_TOKEN": "metrics-token-for-tests-only",
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[Server, dict[str, str]]]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("schemathesis") / "coinpurse.db"
        shutil.copy(template, path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_url")
    server = Server(url, extra_env=ENV)
    try:
        import subprocess
        import sys

        made = subprocess.run(
            [sys.executable, "-m", "coinpurse", "keys", "create", "--service", "games",
             "--scopes", "*", "--json"], capture_output=True, text=True, check=True,
            env={**__import__("os").environ, "COINPURSE_DATABASE_URL": url})
        key = __import__("json").loads(made.stdout)["key"]
        yield server, {"key": key}
    finally:
        server.stop()


def _document() -> dict[str, Any]:
    """The document the server serves (the same code builds it; a test below checks that
    the live server's is identical)."""
    from coinpurse.app import create_app
    from coinpurse.config import Settings

    return create_app(Settings(database_url="sqlite:///unused.db")).openapi()


schema = schemathesis.openapi.from_dict(_document())


def test_the_server_serves_this_document(live: tuple[Server, dict[str, str]]) -> None:
    import httpx

    served = httpx.get(live[0].base_url + "/openapi.json", timeout=30).json()
    assert served == _document()


def _headers(path: str, key: str) -> dict[str, str]:
    if path.startswith("/internal/"):
        return {"X-API-Key": key, "X-Service-Name": "games"}
    if path.startswith("/admin/"):
        return auth(user_token("ops-admin", role="admin", mfa=True))
    if path == "/metrics":
        return {"Authorization": "Bearer " + ENV["COINPURSE_METRICS_TOKEN"]}
    return auth(user_token("u1"))


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_answers_match_the_document(case: Any, live: tuple[Server, dict[str, str]]) -> None:
    server, secrets = live
    ours = _headers(case.path, secrets["key"])
    mine = {k.lower() for k in ours}
    headers = {**{k: v for k, v in (case.headers or {}).items() if k.lower() not in mine},
               **ours}
    case.call_and_validate(base_url=server.base_url, headers=headers,
                           checks=[not_a_server_error, response_schema_conformance,
                                   content_type_conformance])
