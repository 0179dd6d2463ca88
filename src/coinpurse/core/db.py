"""Database engines and migrations for both supported databases.

SQLite: WAL, ``synchronous=FULL`` (an acknowledged write survives a power cut) and
``BEGIN IMMEDIATE`` so a write transaction takes the single writer lock up front instead of
failing half-way. PostgreSQL: asyncpg through SQLAlchemy's async engine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import (
    String,
    Subquery,
    Table,
    and_,
    bindparam,
    event,
    func,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from coinpurse.core.cluster.faults import mark_disconnect
from coinpurse.core.cluster.urls import DbOptions, sqlalchemy_url
from coinpurse.core.cluster.urls import is_postgres as is_postgres_url

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"
MIGRATE_LOCK_ID = 7_262_311_904  # pg advisory lock: one migrator at a time


def async_url(url: str) -> URL:
    """Turn the user's URL (``sqlite:///x.db``, ``postgresql://h1,h2/db``) into the async
    driver's (a host list becomes ``host=`` parameters: ``core.cluster.urls``)."""
    if url.startswith("sqlite"):
        return make_url(url).set(drivername="sqlite+aiosqlite")
    if is_postgres_url(url):
        return sqlalchemy_url(url, "postgresql+asyncpg")
    raise ValueError(f"unsupported database: {url.split(':', 1)[0]}")  # pragma: no cover


# Memory per pooled SQLite connection (each has its own thread, page cache and prepared
# statements). In WAL mode a connection drops its page cache whenever another connection has
# written, and the OS caches the file anyway, so a large cache buys little under writes.
# SQLAlchemy renders an IN list with one placeholder per item, so a batch statement's text
# differs with its size and a long statement cache holds many rarely reused statements.
# Measured (bench/run, SQLite uniform): the defaults (2 MB, 128 statements) left the process
# at 228 MB after the run; these at 180 MB, at the same throughput.
SQLITE_CACHE_KB = 256
SQLITE_STATEMENTS_CACHED = 16


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event below emit BEGIN itself.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KB}")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the single writer lock up front (no failed upgrade half-way); readers
    # start a deferred transaction, a WAL snapshot that never waits for a writer.
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


WRITE_OPTION = "coinpurse_write"


class Engine(AsyncEngine):
    """An AsyncEngine whose ``begin()`` marks its transaction as a write transaction.

    ``async with db.begin()`` writes; ``async with db.connect()`` reads. On SQLite that is
    the difference between BEGIN IMMEDIATE and a plain BEGIN."""

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        conn = self.connect()
        async with conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                yield conn
            # Committed. Hooks that must run only now (``after_commit``) run here.
            for hook in conn.info.pop(AFTER_COMMIT, []):
                hook()

    def read(self) -> AsyncConnection:
        """A connection for reads only (``async with db.read() as conn``). On PostgreSQL in
        autocommit: a SELECT is one round trip, without the BEGIN and ROLLBACK that a
        ``connect()`` puts around it (under READ COMMITTED every statement of a transaction
        takes its own snapshot anyway). SQLite: ``connect()`` (no network, and its BEGIN
        is the WAL snapshot the read needs)."""
        if self.dialect.name != "postgresql":
            return self.connect()
        autocommit: AsyncEngine | None = self.__dict__.get("_autocommit")
        if autocommit is None:
            autocommit = self._autocommit = self.execution_options(isolation_level="AUTOCOMMIT")
        return autocommit.connect()


AFTER_COMMIT = "coinpurse_after_commit"


def read_connection(db: AsyncEngine) -> AsyncConnection:
    """``db.read()`` for an ``Engine``, else ``db.connect()``."""
    return db.read() if isinstance(db, Engine) else db.connect()


def after_commit(conn: AsyncConnection, hook: Callable[[], None]) -> None:
    """Run ``hook`` once the transaction that ``conn`` is in has committed (``db.begin()``)."""
    conn.info.setdefault(AFTER_COMMIT, []).append(hook)


def create_engine(url: str, pool_size: int = 10,
                  options: DbOptions | None = None) -> AsyncEngine:
    aurl = async_url(url)
    if aurl.get_backend_name() == "sqlite":
        engine = create_async_engine(
            aurl, pool_size=pool_size, max_overflow=0,
            connect_args={"cached_statements": SQLITE_STATEMENTS_CACHED})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return Engine(engine.sync_engine)
    # No overflow: connections that come and go cost PostgreSQL a process each; a request
    # that finds the pool busy waits for a connection instead.
    # No pre-ping (a round trip per checkout): a connection found dead raises a disconnect
    # error, on which SQLAlchemy invalidates every pooled connection made before it, and
    # the ledger retries (coinpurse.ledger.retry).
    engine = create_async_engine(
        aurl,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        connect_args=pg_connect_args(options or DbOptions()),
    )
    event.listen(engine.sync_engine, "handle_error", mark_disconnect)
    # Behind PgBouncer in transaction mode statements are unnamed, so planned each time;
    # a SET there would leak into other clients' server connections.
    options = options or DbOptions()
    if options.custom_plans and options.pooling != "transaction":
        event.listen(engine.sync_engine, "connect", _custom_plans)
    return Engine(engine.sync_engine)


def _custom_plans(dbapi_connection: Any, _record: Any) -> None:
    """Once per new connection, on the driver's connection outside any transaction (a SET,
    not a startup parameter: PgBouncer refuses unknown startup parameters)."""
    dbapi_connection.run_async(lambda conn: conn.execute("SET plan_cache_mode = "
                                                         "force_custom_plan"))


def pg_connect_args(options: DbOptions) -> dict[str, Any]:
    """asyncpg's connection arguments: bounded waits, and no named prepared statement that
    outlives its transaction behind a transaction pooler."""
    args: dict[str, Any] = {
        "server_settings": {"application_name": "coinpurse"},
        "timeout": options.connect_timeout_s,  # all hosts of a multi-host URL together
        "command_timeout": options.command_timeout_s,
    }
    if options.pooling == "transaction":
        # PgBouncer 1.18 (Debian 12) does not track prepared statements: each transaction
        # may run on another server connection. Unnamed statements live until the next
        # Parse on the same server connection, i.e. inside our own transaction.
        args.update(prepared_statement_cache_size=0, statement_cache_size=0,
                    prepared_statement_name_func=_unnamed)
    return args


def _unnamed() -> str:
    return ""


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _upgrade_sync(conn: Any, url: str) -> None:
    from alembic import command

    cfg = _alembic_config(url)
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


async def migrate(url: str, options: DbOptions | None = None) -> None:
    """Apply every migration; safe to call from several processes at once on PostgreSQL.

    All of it in one transaction that first takes a transaction-scoped advisory lock: a
    second migrator waits, then finds nothing left to do. Transaction-scoped, so it also
    works through PgBouncer in transaction mode (a session lock could be taken on one
    server connection and released on another)."""
    engine = create_engine(url, pool_size=1, options=options)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            if conn.dialect.name == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK_ID})"))
            await conn.run_sync(_upgrade_sync, url)
            await conn.commit()
    finally:
        await engine.dispose()


class DatabaseNotReady(Exception):
    """The database is missing, unreachable or not migrated; the message says what to do."""


def head_revision() -> str:
    """The newest migration this code ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    if not url.startswith("sqlite"):
        return None  # a multi-host PostgreSQL URL is not SQLAlchemy's to parse
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


async def check_ready(url: str, options: DbOptions | None = None) -> None:
    """Raise DatabaseNotReady unless the database exists, answers, and is at the head
    migration; never creates a SQLite file (connecting to a missing one would)."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise DatabaseNotReady(f"there is no database at {path}: run `coinpurse migrate`")
    engine = create_engine(url, pool_size=1, options=options)
    try:
        async with engine.connect() as conn:
            has_table = await conn.run_sync(
                lambda sync: inspect(sync).has_table("alembic_version"))
            current = None
            if has_table:
                current = (await conn.execute(
                    text("SELECT version_num FROM alembic_version"))).scalar()
    except DatabaseNotReady:
        raise
    except Exception as exc:  # a clear line, not a traceback: wrong URL, server down
        raise DatabaseNotReady(f"cannot reach the database: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    finally:
        await engine.dispose()
    head = head_revision()
    if current != head:
        state = "not migrated" if current is None else f"at migration {current}, not {head}"
        raise DatabaseNotReady(f"the database is {state}: run `coinpurse migrate`")


def migrate_sync(url: str, options: DbOptions | None = None) -> None:
    asyncio.run(migrate(url, options))


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


def insert(conn: AsyncConnection, table: Table) -> Any:
    """The dialect's INSERT, for ``ON CONFLICT`` clauses both databases understand."""
    dialect: Any = postgresql if is_postgres(conn) else sqlite
    return dialect.insert(table)


def array_rows(**columns: str) -> Subquery:
    """PostgreSQL: text arrays bound as parameters (``label=parameter name``), zipped into
    rows. Joined on a unique index, it looks up a batch's (address, currency) or (scope,
    key) pairs with one statement compiled once, however many there are; ``keys_match``
    builds a new expression each time (SQLite's way)."""
    return select(*(func.unnest(bindparam(param, type_=postgresql.ARRAY(String))).label(label)
                    for label, param in columns.items())).subquery()


def keys_match(first: Any, second: Any, pairs: Iterable[tuple[str, str]]) -> Any:
    """``(first, second) IN pairs`` as ``(second = x AND first IN (...)) OR ...``.

    Grouped by the second column (few currencies, few scopes), each arm is one index range
    scan on the unique (first, second) index, however many pairs there are; a long list of
    row-value comparisons would make the planner fall back to scanning the table."""
    groups: dict[str, list[str]] = {}
    for a, b in pairs:
        groups.setdefault(b, []).append(a)
    return or_(*(and_(second == b, first.in_(sorted(a_list)))
                 for b, a_list in sorted(groups.items())))


async def current_revision(url: str) -> str | None:
    """The migration the database is at (None: not migrated, or no SQLite file yet)."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return None
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            if not await conn.run_sync(lambda s: inspect(s).has_table("alembic_version")):
                return None
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))
                    ).scalar()
    finally:
        await engine.dispose()


def pending_migrations(current: str | None) -> list[tuple[str, str]]:
    """(revision, its first docstring line) of each migration after ``current``, oldest
    first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config("sqlite://"))
    found = [(s.revision, (s.doc or "").strip().splitlines()[0] if s.doc else "")
             for s in scripts.iterate_revisions("heads", current or "base")
             if s.revision != current]
    return list(reversed(found))


def migration_sql(url: str, current: str | None) -> str:
    """The SQL that would bring the database from ``current`` to the head, without touching
    it (Alembic's offline mode), for databases migrated by a DBA."""
    import contextlib
    import io

    from alembic import command

    sync_url = make_url(url.replace("postgres://", "postgresql://", 1))
    cfg = _alembic_config(sync_url.render_as_string(hide_password=True))
    out = io.StringIO()
    cfg.output_buffer = out
    with contextlib.redirect_stdout(out):
        command.upgrade(cfg, f"{current}:head" if current else "head", sql=True)
    return out.getvalue()
