"""The TypeScript client: built with its pinned tsc, tested with ``node --test`` against a real
``coinpurse serve`` on each database, and its generated types checked against the OpenAPI
document.

``./scripts/test`` installs Node and npm (Debian's, when missing) and runs ``npm ci`` in
``clients/typescript`` first; these tests fail, rather than skip, when that was not done.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import Backend, create_key
from tests.conftest import TEST_JWT_SECRET, Server

REPO = Path(__file__).resolve().parents[2]
TS = REPO / "clients" / "typescript"
TEST_FILES = ["dist/test/client.test.js", "dist/test/webhooks.test.js"]
NODE = os.environ.get("COINPURSE_TEST_NODE", "node")  # e.g. a Node 18 binary, to try it


def _run(args: list[str], *, cwd: Path = TS, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def built() -> None:
    if not (TS / "node_modules" / ".bin" / "tsc").exists() or shutil.which("node") is None:
        pytest.fail("Node or the TypeScript client's packages are missing: run ./scripts/test "
                    "(or `npm ci` in clients/typescript)")
    build = _run(["npm", "run", "--silent", "build"])
    assert build.returncode == 0, build.stdout + build.stderr


def test_the_typescript_client_against_a_real_server(backend: Backend, limited: Server,
                                                     built: None) -> None:
    env = {
        **os.environ,
        "COINPURSE_BASE_URL": backend.base_url,
        "COINPURSE_API_KEY": backend.api_key,
        "COINPURSE_JWT_SECRET": TEST_JWT_SECRET,
        "COINPURSE_LIMITED_BASE_URL": limited.base_url,
        "COINPURSE_LIMITED_API_KEYS": ",".join(create_key(backend.db_url) for _ in range(2)),
        "COINPURSE_DATABASE_URL": backend.db_url,
        "COINPURSE_PYTHON": sys.executable,
        "COINPURSE_REPO": str(REPO),
    }
    result = _run([NODE, "--test", "--test-reporter=tap", *TEST_FILES], env=env)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    # The runner's summary: every test ran and passed, none skipped or left as todo.
    summary = dict(re.findall(r"^# (pass|fail|skipped|todo|cancelled) (\d+)$", result.stdout,
                              re.MULTILINE))
    assert int(summary["pass"]) >= 17, result.stdout
    assert summary["fail"] == summary["skipped"] == summary["todo"] == "0", result.stdout


def test_the_generated_types_match_the_openapi_document() -> None:
    if not (TS / "node_modules" / ".bin" / "openapi-typescript").exists():
        pytest.fail("run `npm ci` in clients/typescript (./scripts/test does)")
    check = _run([str(TS / "scripts" / "generate"), "--check"],
                 env={**os.environ, "PYTHON": sys.executable})
    assert check.returncode == 0, check.stderr


def test_the_check_fails_when_the_document_changed_without_regenerating(tmp_path: Path) -> None:
    if not (TS / "node_modules" / ".bin" / "openapi-typescript").exists():
        pytest.fail("run `npm ci` in clients/typescript (./scripts/test does)")
    copy = tmp_path / "typescript"
    shutil.copytree(TS / "scripts", copy / "scripts")
    (copy / "src" / "generated").mkdir(parents=True)
    (copy / "node_modules").symlink_to(TS / "node_modules")
    shutil.copy(TS / "openapi.json", copy / "openapi.json")
    stale = (TS / "src" / "generated" / "openapi.ts").read_text()
    stale = stale.replace('    "/internal/v1/wallet/debit": {', '    "/internal/v1/wallet/old": {')
    (copy / "src" / "generated" / "openapi.ts").write_text(stale)

    check = _run([str(copy / "scripts" / "generate"), "--check"],
                 env={**os.environ, "PYTHON": sys.executable})
    assert check.returncode == 1
    assert "was not regenerated" in check.stderr
    assert "src/generated/openapi.ts" in check.stderr and "/internal/v1/wallet/old" in check.stderr
