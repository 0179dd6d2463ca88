"""The deployment files, tested as far as this machine allows (no container engine here):
the entrypoint script runs for real, the compose file and the Dockerfile are read and
checked, and every COINPURSE_* variable they set is one Coinpurse reads, with valid values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from coinpurse.config import Settings
from coinpurse.core.settings import unknown_variables

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
VENV_BIN = Path(sys.executable).parent


def _fake_coinpurse(folder: Path, fail_migrations: int) -> Path:
    """A `coinpurse` that records its arguments and fails `migrate` the first N times."""
    log = folder / "calls.log"
    script = folder / "coinpurse"
    script.write_text(f"""#!/bin/sh
echo "$*" >> {log}
if [ "$1" = migrate ]; then
  n=$(grep -c '^migrate' {log})
  [ "$n" -gt {fail_migrations} ] || exit 1
fi
exit 0
""")
    script.chmod(0o755)
    return log


def _entrypoint(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(ENTRYPOINT), *args], capture_output=True, text=True,
                          timeout=60, env={"PATH": f"{folder}:/usr/bin:/bin",
                                           "COINPURSE_DB_WAIT_S": "0", **env})


def test_entrypoint_waits_for_the_database_then_serves(tmp_path: Path) -> None:
    log = _fake_coinpurse(tmp_path, fail_migrations=2)
    done = _entrypoint(tmp_path, "serve", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == ["migrate", "migrate", "migrate",
                                            "serve --no-migrate --workers 2"]
    assert done.stderr.count("waiting for the database") == 2


def test_entrypoint_gives_up_and_can_skip_migrations(tmp_path: Path) -> None:
    log = _fake_coinpurse(tmp_path, fail_migrations=99)
    gave_up = _entrypoint(tmp_path, "worker", COINPURSE_DB_WAIT_TRIES="3")
    assert gave_up.returncode == 1 and "giving up" in gave_up.stderr
    assert log.read_text().splitlines() == ["migrate"] * 3
    log.unlink()
    skipped = _entrypoint(tmp_path, "worker", "--metrics-port", "9100",
                          COINPURSE_MIGRATE="0")
    assert skipped.returncode == 0
    assert log.read_text().splitlines() == ["worker --metrics-port 9100"]


def test_entrypoint_defaults_and_other_commands(tmp_path: Path) -> None:
    log = _fake_coinpurse(tmp_path, fail_migrations=0)
    assert _entrypoint(tmp_path).returncode == 0
    assert log.read_text().splitlines()[-1] == "serve --no-migrate --host 0.0.0.0 --port 8000"
    assert _entrypoint(tmp_path, "keys", "list", "--json").returncode == 0
    assert log.read_text().splitlines()[-1] == "keys list --json"
    other = _entrypoint(tmp_path, "echo", "hello")
    assert other.stdout == "hello\n"


def test_entrypoint_with_the_real_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "COINPURSE_DATABASE_URL": url,
           "HOME": str(tmp_path)}
    status = subprocess.run(["sh", str(ENTRYPOINT), "migrate", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["migrated"] is True


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_has_the_services_of_a_production_set_up() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "api-1", "api-2", "worker"}
    for name in ("api-1", "api-2"):
        s = services[name]
        assert s["command"][0] == "serve" and "--workers" in s["command"]
        assert s["build"] == "." and s["depends_on"]["postgres"]["condition"] == \
            "service_healthy"
        env = s["environment"]
        assert env["COINPURSE_DATABASE_URL"].startswith("postgresql://coinpurse:")
        assert "@postgres:5432/" in env["COINPURSE_DATABASE_URL"]
        assert env["COINPURSE_REDIS_URL"] == "redis://redis:6379/0"
    assert services["worker"]["command"][0] == "worker"
    assert "healthcheck" in services["worker"]
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name]
    assert services["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]


def test_the_deployment_settings_are_known_and_valid() -> None:
    """Every COINPURSE_* variable in compose.yaml and .env.example is one Coinpurse reads
    (no typo left at its default), and together they load."""
    env: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    for name, value in _compose()["services"]["api-1"]["environment"].items():
        env[name] = value.replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}",
                                  env["POSTGRES_PASSWORD"])
    mentioned = {n for n in env if n.startswith("COINPURSE_")}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("# COINPURSE_"):
            mentioned.add(line[2:].partition("=")[0])
    assert unknown_variables(Settings.model_fields, {n: "x" for n in mentioned}) == []
    settings = Settings(**{n.removeprefix("COINPURSE_").lower(): v  # type: ignore[arg-type]
                           for n, v in env.items() if n.startswith("COINPURSE_")})
    assert settings.db_pool_size == 10 and settings.proxies


def test_the_dockerfile_builds_in_stages_and_runs_unprivileged() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    assert any(ln.startswith("COPY --from=build ") for ln in lines)
    user = next(ln for ln in lines if ln.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("0", "root")
    assert any(ln.startswith("HEALTHCHECK ") for ln in lines)
    assert 'ENTRYPOINT ["coinpurse-entrypoint"]' in lines
    assert "COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/coinpurse-entrypoint" in lines
    assert os.access(ENTRYPOINT, os.X_OK)
