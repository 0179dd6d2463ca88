"""The ``coinpurse`` command: serve, migrate, manage service keys and partitions, issue
demo tokens."""

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

T = TypeVar("T")
DEMO_SECRET_FILE = Path(".coinpurse-demo-secret")
DEMO_ENV_FILE = Path(".coinpurse-demo.env")


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        click.echo(f"coinpurse: {exc}", err=True)
        sys.exit(2)
    for name in unknown_settings():
        click.echo(f"coinpurse: warning: unknown setting {name} is ignored", err=True)
    return settings


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
def migrate() -> None:
    """Apply the database migrations (safe to run from several processes at once)."""
    settings = _settings()
    _migrate(settings)
    click.echo(f"migrated {_safe_url(settings.direct_db[0])}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes (PostgreSQL only; SQLite has one writer).")
@click.option("--no-migrate", is_flag=True, help="Do not apply migrations first.")
@click.option("--demo", is_flag=True,
              help="Create a demo service key and users with money, and print how to try them.")
def serve(host: str, port: int, workers: int, no_migrate: bool, demo: bool) -> None:
    """Start the HTTP API (migrations are applied first unless --no-migrate)."""
    import uvicorn

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
    uvicorn.run(
        "coinpurse.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,
        # Live streams (SSE, WebSocket) never end by themselves: on shutdown they are cut
        # after this long (clients reconnect to another process with Last-Event-ID).
        timeout_graceful_shutdown=5,
    )


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
def worker() -> None:
    """Run the background jobs (hold expiry, idempotency purge) without serving HTTP.

    ``coinpurse serve`` runs them too; a separate worker suits deployments that scale the API
    and the jobs apart. Several may run at once: each job is safe to race."""
    from coinpurse.worker import run_worker

    settings = _settings()
    _migrate(settings)
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
    for table, parts in found["tables"].items():
        click.echo(f"{table}: " + ", ".join(x["month"] for x in parts))
    click.echo(f"months ready after the current one: {found['months_ahead']}")


@partitions.command("ensure")
@click.option("--ahead", "ahead_months", default=1, show_default=True,
              type=click.IntRange(0, 24), help="Months to create after the current one.")
def partitions_ensure(ahead_months: int) -> None:
    """Create the coming months' partitions now (the job does it every hour)."""
    from coinpurse.partitions.service import ensure

    created = _run(_settings(), lambda c: ensure(c, ahead_months=ahead_months), write=True,
                   direct=True)
    click.echo("created: " + (", ".join(created) or "nothing, all there"))


@partitions.command("detach")
@click.option("--before", "before", required=True, help="Detach the months before this one "
              "(YYYY-MM), from every history table.")
def partitions_detach(before: str) -> None:
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

    async def create(conn: Any) -> tuple[Any, bool]:
        user = await accounts.create_user(conn, email, password, role=role)
        if user is not None:
            return user, True
        return await accounts.set_role(conn, email, role), False

    try:
        user, created = _run(settings, create, write=True)
    except ValidationFailed as exc:
        click.echo(f"coinpurse: {exc.detail}", err=True)
        sys.exit(2)
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
    for k in found:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        click.echo(f"{k.id}  {k.service:<16} {state:<24} {k.key_prefix}...  {' '.join(k.scopes)}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
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
    click.echo(f"revoked {key.id} ({key.service})")


@main.command()
@click.option("--user", "user_id", required=True, help="The user id (the token's sub).")
@click.option("--ttl", "ttl_s", default=3600, show_default=True,
              type=click.IntRange(1, 30 * 86_400))
@click.option("--role", type=click.Choice(["user", "merchant", "admin", "auditor"]),
              default="user", show_default=True,
              help="The token's role claim (admin and auditor tokens also claim mfa).")
def token(user_id: str, ttl_s: int, role: str) -> None:
    """Print a user token signed with COINPURSE_JWT_SECRET (for development)."""
    from coinpurse.auth.tokens import USER_ID_RE, issue_hs256

    settings = _settings()
    if settings.jwt_secret is None:
        click.echo("coinpurse: COINPURSE_JWT_SECRET is not set", err=True)
        sys.exit(2)
    if not USER_ID_RE.match(user_id):
        raise click.BadParameter("user ids are 1-128 of letters, digits, . _ @ + -")
    click.echo(issue_hs256(settings.jwt_secret.get_secret_value(), user_id, ttl_s=ttl_s,
                           iss=settings.jwt_issuer, aud=settings.jwt_audience,
                           role=None if role == "user" else role,
                           mfa=True if role in ("admin", "auditor") else None))
