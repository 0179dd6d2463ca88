"""The ``coinpurse`` command: serve, migrate, manage service keys and partitions, export,
check the configuration, issue demo tokens.

Every command takes ``--json`` for scripts; list commands print aligned tables on a
terminal (tab-separated lines when piped). Logs go to stderr, as configured by
``COINPURSE_LOG_FORMAT`` and ``COINPURSE_LOG_LEVEL``; results go to stdout."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from coinpurse.config import ConfigError, Settings, load_settings, unknown_settings
from coinpurse.reconcile.commands import reconcile, verify

T = TypeVar("T")
DEMO_SECRET_FILE = Path(".coinpurse-demo-secret")
DEMO_ENV_FILE = Path(".coinpurse-demo.env")
# Read by prometheus-client when it is first imported (so not from coinpurse.core.metrics).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _settings(*, warn_unknown: bool = True) -> Settings:
    from coinpurse.core import logging as coinpurse_logging

    try:
        settings = load_settings()
    except ConfigError as exc:
        click.echo(f"coinpurse: {exc}", err=True)
        sys.exit(2)
    coinpurse_logging.configure(settings.log_level, settings.log_format)
    if warn_unknown:
        for name in unknown_settings():
            click.echo(f"coinpurse: warning: unknown setting {name} is ignored", err=True)
    return settings


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    """Aligned columns on a terminal; tab-separated lines (no header) when piped."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    if not sys.stdout.isatty():
        for row in cells:
            click.echo("\t".join(row))
        return
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
               .rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _json(data: Any) -> None:
    click.echo(json.dumps(data, default=str))


def _require_ready(settings: Settings) -> None:
    """One clear line, never a traceback, when the database is missing, down or unmigrated;
    and a missing SQLite file is not created by looking at it."""
    from coinpurse.core.db import DatabaseNotReady, check_ready

    try:
        asyncio.run(check_ready(settings.database_url, settings.db_options))
    except DatabaseNotReady as exc:
        click.echo(f"coinpurse: {_safe_url(settings.database_url)}: {exc}", err=True)
        sys.exit(1)


def _run(settings: Settings, fn: Callable[[Any], Awaitable[T]], *, write: bool,
         direct: bool = False) -> T:
    """Run ``fn(conn)`` in one database transaction (or a plain connection for reads), on
    a database that exists and is migrated; ``direct``: on COINPURSE_DIRECT_DATABASE_URL
    if set (DDL, as the migrations' role)."""
    from coinpurse.core.db import create_engine

    _require_ready(settings)
    url, options = settings.direct_db if direct else (settings.database_url,
                                                      settings.db_options)

    async def main() -> T:
        engine = create_engine(url, pool_size=1, options=options)
        try:
            if write:
                async with engine.begin() as conn:
                    return await fn(conn)
            async with engine.connect() as conn:
                return await fn(conn)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _migrate(settings: Settings) -> None:
    """Migrations, then the coming months' history partitions (PostgreSQL), on the direct
    URL if set: DDL bypasses PgBouncer, and runs as the role that owns the tables."""
    from coinpurse.core.db import create_engine, migrate
    from coinpurse.partitions.service import ensure

    url, options = settings.direct_db

    async def main() -> None:
        await migrate(url, options)
        engine = create_engine(url, pool_size=1, options=options)
        try:
            async with engine.begin() as conn:
                await ensure(conn)
        finally:
            await engine.dispose()

    try:
        asyncio.run(main())
    except Exception as exc:  # a clear line, not a traceback, for a wrong URL or a down server
        click.echo(f"coinpurse: could not migrate {_safe_url(url)}: {exc}", err=True)
        sys.exit(1)


def _safe_url(url: str) -> str:
    from coinpurse.core.cluster.urls import safe

    return safe(url)


@click.group()
@click.version_option(package_name="coinpurse")
def main() -> None:
    """Coinpurse: wallets and a double-entry ledger. Configured by COINPURSE_* variables."""


@main.command()
@click.option("--status", is_flag=True, help="Show where the database is; change nothing.")
@click.option("--sql", is_flag=True,
              help="Print the SQL that would migrate the database; change nothing.")
@click.option("--json", "as_json", is_flag=True)
def migrate(status: bool, sql: bool, as_json: bool) -> None:
    """Apply the database migrations (safe to run from several processes at once).

    --status tells the current and the newest migration and what is pending (exit 1 when
    something is); --sql prints the SQL instead of running it, for a DBA to review."""
    from coinpurse.core.db import (
        current_revision,
        head_revision,
        migration_sql,
        pending_migrations,
    )

    settings = _settings()
    url = settings.direct_db[0]  # where the migrations run (bypassing PgBouncer if set)
    if status or sql:
        try:
            current = asyncio.run(current_revision(url))
        except Exception as exc:
            click.echo(f"coinpurse: cannot reach {_safe_url(url)}: {exc}", err=True)
            sys.exit(1)
        pending = pending_migrations(current)
        if sql:
            text = migration_sql(url, current)
            _json({"current": current, "sql": text}) if as_json else click.echo(text)
            return
        head = head_revision()
        if as_json:
            _json({"database": _safe_url(url), "current": current, "head": head,
                   "pending": [{"revision": r, "description": d} for r, d in pending]})
        else:
            click.echo(f"database: {_safe_url(url)}\ncurrent:  {current or '(none)'}\n"
                       f"head:     {head}")
            if pending:
                click.echo(f"pending:  {len(pending)}")
                _table(["revision", "description"], [list(p) for p in pending])
            else:
                click.echo("up to date")
        sys.exit(1 if pending else 0)
    _migrate(settings)
    if as_json:
        _json({"database": _safe_url(url), "migrated": True})
    else:
        click.echo(f"migrated {_safe_url(url)}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes (PostgreSQL only; SQLite has one writer).")
@click.option("--no-migrate", is_flag=True, help="Do not apply migrations first.")
@click.option("--demo", is_flag=True,
              help="Create a demo service key and users with money, and print how to try them.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Also serve Prometheus metrics (no token) on this port.")
@click.option("--metrics-host", default=None,
              help="Address for --metrics-port (default: --host).")
def serve(host: str, port: int, workers: int, no_migrate: bool, demo: bool,
          metrics_port: int | None, metrics_host: str | None) -> None:
    """Start the HTTP API (migrations are applied first unless --no-migrate).

    SIGTERM stops it gracefully: no new connections, requests in flight and queued ledger
    batches finish (each within COINPURSE_SHUTDOWN_TIMEOUT_S), then it exits."""
    import uvicorn

    from coinpurse.http.protocol import OneWriteHttpProtocol

    settings = _settings()
    if settings.is_sqlite and workers > 1:
        click.echo(
            "coinpurse: SQLite has a single writer, so --workers must be 1 with SQLite. "
            "Use PostgreSQL (COINPURSE_DATABASE_URL=postgresql://...) for several processes.",
            err=True,
        )
        sys.exit(2)
    if not no_migrate:
        _migrate(settings)
    if "COINPURSE_PUBLIC_URL" not in os.environ:
        # Checkout and return links point at this server, on the port it listens on.
        public_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        os.environ["COINPURSE_PUBLIC_URL"] = f"http://{public_host}:{port}"
        settings = _settings()
    if demo:
        settings = _prepare_demo(settings, host, port)
    metrics_dir = _metrics_dir() if workers > 1 else None
    try:
        if metrics_port is not None:
            _serve_metrics(metrics_host or host, metrics_port)
        uvicorn.run(
            "coinpurse.app:create_served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level,
            log_config=None,  # ours (coinpurse.core.logging), set up in each process
            access_log=False,  # ours has the route template and the caller
            proxy_headers=False,  # COINPURSE_TRUSTED_PROXIES decides, inside the app
            http=OneWriteHttpProtocol,  # a response's head and body in one write
            timeout_graceful_shutdown=settings.shutdown_timeout_s,
        )
    finally:
        if metrics_dir is not None:
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_dir() -> str | None:
    """Several processes: prometheus-client's multiprocess mode, in an empty folder that
    the workers inherit (``PROMETHEUS_MULTIPROC_DIR``, if set, is emptied and used).
    Returns the folder to remove at exit, if this made it."""
    import tempfile

    given = os.environ.get(MULTIPROC_ENV)
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return None
    made = tempfile.mkdtemp(prefix="coinpurse-metrics-")
    os.environ[MULTIPROC_ENV] = made
    return made


def _serve_metrics(host: str, port: int) -> None:
    """Prometheus metrics on their own port, from this (the supervising) process."""
    from prometheus_client import start_http_server

    from coinpurse.core import metrics

    if metrics.multiprocess_mode():
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, addr=host, registry=registry)
    else:
        start_http_server(port, addr=host)


def _prepare_demo(settings: Settings, host: str, port: int) -> Settings:
    """Seed demo data once (fixed idempotency keys), then print a key and a token."""
    from coinpurse.auth import keys
    from coinpurse.auth.tokens import issue_hs256
    from coinpurse.demo import DEMO_ACCOUNTS, seed, seed_accounts

    # The demo signs in with built-in accounts (the web wallet and console), pays at the
    # mock checkout of this very server, and lets alice withdraw once she is verified.
    os.environ.setdefault("COINPURSE_AUTH", "builtin")
    os.environ.setdefault("COINPURSE_WITHDRAWAL_CURRENCIES",
                          f"{next(iter(settings.currencies))}:10")
    if settings.jwt_secret is None and settings.jwt_public_key is None:
        if not DEMO_SECRET_FILE.exists():
            DEMO_SECRET_FILE.write_text(secrets.token_urlsafe(32))
            DEMO_SECRET_FILE.chmod(0o600)
        os.environ["COINPURSE_JWT_SECRET"] = DEMO_SECRET_FILE.read_text().strip()
    settings = _settings()
    if settings.jwt_secret is None:
        click.echo("coinpurse: --demo signs tokens with COINPURSE_JWT_SECRET; it is unset, "
                   "and a public key cannot sign", err=True)
        sys.exit(2)

    _, key = _run(settings, lambda c: keys.create_key(c, "demo", "*"), write=True)
    asyncio.run(seed(settings))
    totp = asyncio.run(seed_accounts(settings)) if settings.auth == "builtin" else {}
    token = issue_hs256(settings.jwt_secret.get_secret_value(), "alice", ttl_s=7 * 86_400,
                        iss=settings.jwt_issuer, aud=settings.jwt_audience)
    base = f"http://{host}:{port}"
    DEMO_ENV_FILE.write_text(f"export KEY={key}\nexport TOKEN={token}\nexport BASE={base}\n")
    lines = []
    if settings.auth == "builtin":
        lines.append(f"Web wallet {base}/wallet and console {base}/console; sign in as:")
        for acc in DEMO_ACCOUNTS:
            extra = f"; 2FA secret {totp[acc.user_id]}" if acc.user_id in totp else ""
            lines.append(f"  {acc.email:<22} {acc.password:<20} {acc.note}{extra}")
        if totp:
            lines.append("A current 2FA code (or use an authenticator app): .venv/bin/python "
                         "-c 'import pyotp; print(pyotp.TOTP(\"SECRET\").now())'")
        lines.append("")
    click.echo(
        "\n=== Coinpurse demo ===\n" + "\n".join(lines) +
        f"Service key (service 'demo', all scopes): {key}\n"
        f"Token of user 'alice' (7 days):           {token}\n\n"
        f"In another terminal:  source {DEMO_ENV_FILE}   (sets KEY, TOKEN and BASE)\n"
        f"API docs:             {base}/docs\n"
    )
    return settings


@main.command()
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve this process's Prometheus metrics on this port.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
def worker(metrics_port: int | None, metrics_host: str) -> None:
    """Run the background jobs (hold expiry, idempotency purge) without serving HTTP.

    ``coinpurse serve`` runs them too; a separate worker suits deployments that scale the API
    and the jobs apart. Several may run at once: each job is safe to race."""
    from coinpurse.worker import run_worker

    settings = _settings()
    _migrate(settings)
    if metrics_port is not None:
        _serve_metrics(metrics_host, metrics_port)
    click.echo("coinpurse worker running; Ctrl+C to stop")
    asyncio.run(run_worker(settings))  # stops cleanly on SIGINT or SIGTERM


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(as_json: bool) -> None:
    """Reconcile every balance with its entries and check the ledger's invariants."""
    from coinpurse.ledger import check as reconcile

    report = _run(_settings(), reconcile.check, write=False)
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "accounts": report.accounts,
                               "transactions": report.transactions, "entries": report.entries,
                               "problems": report.problems}, default=str))
    else:
        click.echo(f"{report.accounts} accounts, {report.transactions} transactions, "
                   f"{report.entries} entries: " + ("OK" if report.ok else "PROBLEMS"))
        for name, rows in report.problems.items():
            click.echo(f"  {name}: {rows}")
    sys.exit(0 if report.ok else 1)


main.add_command(reconcile)
main.add_command(verify)


@main.group()
def partitions() -> None:
    """Monthly partitions of the history tables (PostgreSQL; docs/partitioning.md)."""


@partitions.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def partitions_list(as_json: bool) -> None:
    """The attached months of each history table, and how many are ready ahead."""
    from coinpurse.partitions import service as p

    async def read(conn: Any) -> dict[str, Any]:
        found = await p.months(conn)
        return {"tables": {t: [{"name": x.name, "month": x.month.isoformat()[:7],
                                "rows_estimate": x.rows} for x in parts]
                           for t, parts in found.items()},
                "months_ahead": await p.ahead(conn)}

    found = _run(_settings(), read, write=False)
    if as_json:
        click.echo(json.dumps(found))
        return
    if not found["tables"]:
        click.echo("the history tables are not partitioned (SQLite keeps plain tables)")
        return
    _table(["table", "partition", "month", "rows_estimate"],
           [[table, x["name"], x["month"], x["rows_estimate"]]
            for table, parts in found["tables"].items() for x in parts])
    click.echo(f"months ready after the current one: {found['months_ahead']}")


@partitions.command("ensure")
@click.option("--ahead", "ahead_months", default=1, show_default=True,
              type=click.IntRange(0, 24), help="Months to create after the current one.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def partitions_ensure(ahead_months: int, as_json: bool) -> None:
    """Create the coming months' partitions now (the job does it every hour)."""
    from coinpurse.partitions.service import ensure

    created = _run(_settings(), lambda c: ensure(c, ahead_months=ahead_months), write=True,
                   direct=True)
    if as_json:
        _json({"created": list(created)})
    else:
        click.echo("created: " + (", ".join(created) or "nothing, all there"))


@partitions.command("detach")
@click.option("--before", "before", required=True, help="Detach the months before this one "
              "(YYYY-MM), from every history table.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def partitions_detach(before: str, as_json: bool) -> None:
    """Detach old months for archiving: each becomes a plain table (pg_dump -t it, then
    DROP TABLE). Balances stay; `coinpurse check` counts the detached entries' totals."""
    from coinpurse.partitions.service import detach_before

    try:
        year, month_text = before.split("-")
        month = date(int(year), int(month_text), 1)
    except ValueError:
        raise click.BadParameter(f"{before!r} is not a month such as 2026-01",
                                 param_hint="--before") from None
    try:
        detached = _run(_settings(), lambda c: detach_before(c, month), write=True,
                        direct=True)
    except ValueError as exc:
        click.echo(f"coinpurse: {exc}", err=True)
        sys.exit(2)
    if as_json:
        _json({"detached": list(detached)})
    else:
        click.echo("detached: " + (", ".join(detached) or "nothing before " + before))


@main.group()
def admin() -> None:
    """Built-in accounts with the admin, auditor or merchant role."""


@admin.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["admin", "auditor", "merchant"]), default="admin",
              show_default=True)
@click.option("--password", envvar="COINPURSE_ADMIN_PASSWORD",
              help="Default: read from standard input, or prompted on a terminal.")
@click.option("--json", "as_json", is_flag=True)
def admin_create(email: str, role: str, password: str | None, as_json: bool) -> None:
    """Create an admin (or give an existing account the role). The admin must then sign in,
    enrol two-factor authentication and sign in again with a code before any admin call.
    ``--role merchant`` makes a merchant account (it sells products; no admin rights)."""
    from coinpurse.auth import accounts
    from coinpurse.core.errors import ValidationFailed

    settings = _settings()
    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\n")
    assert password is not None

    try:
        # argon2 first, outside the transaction (on a worker thread).
        email, password_hash = asyncio.run(accounts.hash_new_password(email, password))
    except ValidationFailed as exc:
        click.echo(f"coinpurse: {exc.detail}", err=True)
        sys.exit(2)

    async def create(conn: Any) -> tuple[Any, bool]:
        user = await accounts.create_user(conn, email, password_hash, role=role)
        if user is not None:
            return user, True
        return await accounts.set_role(conn, email, role), False

    user, created = _run(settings, create, write=True)
    if as_json:
        from coinpurse.auth.schemas import UserOut

        shown = UserOut.model_validate(user).model_dump(mode="json")
        click.echo(json.dumps({**shown, "created": created}))
    else:
        click.echo(f"{'created' if created else 'updated'} {user.email} ({user.id}) as {role}")
    if settings.auth != "builtin":
        click.echo("note: COINPURSE_AUTH is not builtin, so this account cannot sign in "
                   "until it is", err=True)


@main.group()
def keys() -> None:
    """Service API keys (stored hashed; a key is shown only when created)."""


@keys.command("create")
@click.option("--service", required=True, help="The calling service's name, e.g. games.")
@click.option("--scopes", required=True,
              help="Comma-separated, e.g. 'wallet:read,wallet:credit:points' or '*'.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def keys_create(service: str, scopes: str, as_json: bool) -> None:
    """Create a key and print it once."""
    from coinpurse.auth import keys as keys_mod
    from coinpurse.auth.scopes import parse_scopes

    settings = _settings()
    try:
        keys_mod.check_service_name(service)
        parse_scopes(scopes)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    key, secret = _run(settings, lambda c: keys_mod.create_key(c, service, scopes), write=True)
    if as_json:
        from coinpurse.admin.schemas import KeyCreatedOut
        from coinpurse.auth.model import NewKey

        click.echo(json.dumps(KeyCreatedOut.of(NewKey(key, secret)).answer()))
    else:
        click.echo(f"id:      {key.id}\nservice: {key.service}\n"
                   f"scopes:  {' '.join(key.scopes)}\nkey:     {secret}\n"
                   "(the key is not stored and will not be shown again)")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def keys_list(as_json: bool) -> None:
    """List keys (never the secrets)."""
    from coinpurse.auth import keys as keys_mod

    found = _run(_settings(), keys_mod.list_keys, write=False)
    if as_json:
        from coinpurse.admin.schemas import KeyOut

        click.echo(json.dumps([KeyOut.from_domain(k).answer() for k in found]))
        return
    rows = []
    for k in found:
        state = (f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else
                 f"expires {k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "active")
        rows.append([k.id, k.service, state, f"{k.key_prefix}...", " ".join(k.scopes)])
    _table(["id", "service", "state", "prefix", "scopes"], rows)


@keys.command("revoke")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True)
def keys_revoke(key_id: str, as_json: bool) -> None:
    """Revoke a key: it stops working at once."""
    from coinpurse.auth import keys as keys_mod
    from coinpurse.auth.keycache import announce_committed
    from coinpurse.core.errors import NotFound

    settings = _settings()
    try:
        key = _run(settings, lambda c: keys_mod.revoke_key(c, key_id), write=True)
        announce_committed(settings.database_url)
    except NotFound:
        click.echo(f"coinpurse: no key {key_id!r}", err=True)
        sys.exit(1)
    if as_json:
        from coinpurse.admin.schemas import KeyOut

        _json(KeyOut.from_domain(key).answer())
    else:
        click.echo(f"revoked {key.id} ({key.service})")


@keys.command("rotate")
@click.argument("key_id")
@click.option("--grace", "grace_s", type=click.IntRange(0, 30 * 86_400), default=None,
              help="Seconds the old key keeps working (default "
                   "COINPURSE_KEY_ROTATION_GRACE_S).")
@click.option("--json", "as_json", is_flag=True)
def keys_rotate(key_id: str, grace_s: int | None, as_json: bool) -> None:
    """Replace a key with a new one (same service and scopes) and print it once; the old
    key keeps working for the grace period, so callers can switch without downtime."""
    from coinpurse.auth import keys as keys_mod
    from coinpurse.auth.keycache import announce_committed
    from coinpurse.core.errors import NotFound

    settings = _settings()
    grace = settings.key_rotation_grace_s if grace_s is None else grace_s
    try:
        new, secret, old = _run(settings, lambda c: keys_mod.rotate_key(
            c, key_id, grace, rotated_by="cli"), write=True)
        announce_committed(settings.database_url)
    except NotFound:
        click.echo(f"coinpurse: no active key {key_id!r}", err=True)
        sys.exit(1)
    if as_json:
        from coinpurse.admin.schemas import KeyRotatedOut
        from coinpurse.auth.model import NewKey, RotatedKey

        _json(KeyRotatedOut.of_rotation(RotatedKey(NewKey(new, secret), old)).answer())
    else:
        click.echo(f"id:      {new.id}\nservice: {new.service}\n"
                   f"scopes:  {' '.join(new.scopes)}\nkey:     {secret}\n"
                   f"(the old key {old.id} works until "
                   f"{old.expires_at:%Y-%m-%d %H:%M:%S} UTC; the new key is not stored and "
                   "will not be shown again)")


@main.command()
@click.option("--user", "user_id", required=True, help="The user id (the token's sub).")
@click.option("--ttl", "ttl_s", default=3600, show_default=True,
              type=click.IntRange(1, 30 * 86_400))
@click.option("--role", type=click.Choice(["user", "merchant", "admin", "auditor"]),
              default="user", show_default=True,
              help="The token's role claim (admin and auditor tokens also claim mfa).")
@click.option("--json", "as_json", is_flag=True)
def token(user_id: str, ttl_s: int, role: str, as_json: bool) -> None:
    """Print a user token signed with COINPURSE_JWT_SECRET (for development)."""
    from coinpurse.auth.tokens import USER_ID_RE, issue_hs256

    settings = _settings()
    if settings.jwt_secret is None:
        click.echo("coinpurse: COINPURSE_JWT_SECRET is not set", err=True)
        sys.exit(2)
    if not USER_ID_RE.match(user_id):
        raise click.BadParameter("user ids are 1-128 of letters, digits, . _ @ + -")
    token = issue_hs256(settings.jwt_secret.get_secret_value(), user_id, ttl_s=ttl_s,
                        iss=settings.jwt_issuer, aud=settings.jwt_audience,
                        role=None if role == "user" else role,
                        mfa=True if role in ("admin", "auditor") else None)
    if as_json:
        _json({"user_id": user_id, "role": role, "token": token, "ttl_s": ttl_s})
    else:
        click.echo(token)


@main.command()
@click.argument("what", type=click.Choice(["transactions", "entries"]))
@click.option("--from", "start", type=click.DateTime(), default=None,
              help="Oldest included (ISO 8601, UTC), e.g. 2026-01-01 or 2026-01-01T12:00:00.")
@click.option("--to", "end", type=click.DateTime(), default=None, help="First excluded.")
@click.option("--account", "address", default=None,
              help="Only what touched this address, e.g. user:123 or service:games.")
@click.option("--currency", default=None)
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              show_default=True, help="A file, or - for standard output.")
def export(what: str, start: Any, end: Any, address: str | None, currency: str | None,
           fmt: str, output: str) -> None:
    """Export transactions or entries, oldest first, as CSV or JSON Lines.

    Streams in chunks from one read transaction (memory stays flat however large the
    ledger); shows a progress bar when run on a terminal."""
    from datetime import UTC

    from coinpurse.ledger import queries
    from coinpurse.ops import export as exporter

    settings = _settings()
    start = start.replace(tzinfo=UTC) if start is not None else None
    end = end.replace(tzinfo=UTC) if end is not None else None
    out = sys.stdout if output == "-" else open(output, "w", newline="")  # noqa: SIM115
    show_progress = sys.stderr.isatty() and not (output == "-" and sys.stdout.isatty())

    async def run(conn: Any) -> int:
        if conn.dialect.name == "postgresql":  # one snapshot for the whole file
            await conn.execution_options(isolation_level="REPEATABLE READ")
        total = (await queries.export_count(conn, what, start=start, end=end,
                                            address=address, currency=currency)
                 if show_progress else 0)
        write = exporter.line_writer(what, fmt, out)
        written = 0
        with click.progressbar(length=total, label=f"exporting {what}", file=sys.stderr,
                               hidden=not show_progress) as bar:
            async for row in exporter.rows(conn, what, start=start, end=end,
                                           address=address, currency=currency):
                write(row)
                written += 1
                if written % 1000 == 0:
                    bar.update(1000)
            bar.update(written % 1000)
        return written

    try:
        written = _run(settings, run, write=False)
    finally:
        if out is not sys.stdout:
            out.close()
    click.echo(f"exported {written} {what}" + (f" to {output}" if output != "-" else ""),
               err=True)


@main.group()
def config() -> None:
    """The configuration (COINPURSE_* environment variables)."""


@config.command("check")
@click.option("--json", "as_json", is_flag=True)
def config_check(as_json: bool) -> None:
    """Validate the configuration and print the effective settings, secrets masked.

    Exit 2 on a bad value or on a COINPURSE_* variable that no setting reads (a typo would
    otherwise leave the default in force unnoticed)."""
    from coinpurse.ops.config import effective_settings

    settings = _settings(warn_unknown=False)
    unknown = unknown_settings()
    shown = effective_settings(settings)
    if as_json:
        _json({"ok": not unknown, "unknown": unknown,
               "settings": {s.variable: {"value": s.value, "source": s.source}
                            for s in shown}})
    else:
        _table(["variable", "value", "source"], [[s.variable, s.value, s.source]
                                                 for s in shown])
        for name in unknown:
            click.echo(f"coinpurse: unknown setting {name}", err=True)
        if not unknown:
            click.echo("configuration OK", err=True)
    sys.exit(2 if unknown else 0)
