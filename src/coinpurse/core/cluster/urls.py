"""Database URLs as operators write them, mapped onto what SQLAlchemy and asyncpg accept.

Operators write libpq's form, one URL for the whole cluster::

    postgresql://user:pass@h1:5432,h2:5432/coinpurse?target_session_attrs=read-write

SQLAlchemy cannot parse a host list in the authority part; its asyncpg dialect takes one
``host=h:p`` query parameter per host instead, and hands the list to ``asyncpg.connect``,
which tries the hosts in order and keeps the first that matches ``target_session_attrs``
(``read-write``: not a standby, not read-only). So after a failover the next connection
finds the new primary by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from sqlalchemy.engine import URL, make_url

DEFAULT_PORT = 5432
# asyncpg's values (libpq also has them, except prefer-standby).
SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
Pooling = Literal["session", "transaction"]


@dataclass(frozen=True, slots=True)
class DbOptions:
    """How Coinpurse talks to PostgreSQL; from ``COINPURSE_DB_*`` settings.

    Timeouts keep a request from waiting on a dead socket: a connection attempt gives up
    after ``connect_timeout_s`` (per host), a statement after ``command_timeout_s``.
    ``pooling="transaction"``: behind PgBouncer in transaction mode, where consecutive
    transactions of one client connection may run on different server connections, so no
    named prepared statement may outlive its transaction."""

    connect_timeout_s: float = 5.0
    command_timeout_s: float = 30.0
    pooling: Pooling = "session"
    # Plan every execution of a prepared statement for its parameters (``plan_cache_mode =
    # force_custom_plan``). For the ledger's committers: their statements run on tables that
    # grow fast, and a generic plan made while a table was nearly empty (a sequential scan)
    # would stay until autovacuum next analyzes it, which on a new database took whole
    # benchmark runs. Planning a few statements per batch costs little.
    custom_plans: bool = False


@dataclass(frozen=True, slots=True)
class PgUrl:
    """A parsed ``postgresql://`` URL, one or several hosts."""

    hosts: tuple[tuple[str, int], ...]
    database: str | None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    query: tuple[tuple[str, str], ...] = ()

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)

    def sqlalchemy(self, driver: str = "postgresql+asyncpg") -> URL:
        """The URL SQLAlchemy's asyncpg dialect takes (hosts as ``host=`` parameters)."""
        query: dict[str, str | list[str]] = dict(self.query)
        if len(self.hosts) == 1:
            (host, port), = self.hosts
            return URL.create(driver, self.username, self.password, host, port,
                              self.database, query)
        query["host"] = [f"{h}:{p}" for h, p in self.hosts]
        return URL.create(driver, self.username, self.password, None, None, self.database,
                          query)

    def asyncpg_kwargs(self, options: DbOptions | None = None) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect`` (the key cache's own connection)."""
        options = options or DbOptions()
        kwargs: dict[str, Any] = {
            "host": [h for h, _ in self.hosts], "port": [p for _, p in self.hosts],
            "user": self.username, "password": self.password, "database": self.database,
            "timeout": options.connect_timeout_s,
            "command_timeout": options.command_timeout_s,
        }
        attrs = self.params.get("target_session_attrs")
        if attrs:
            kwargs["target_session_attrs"] = attrs
        if options.pooling == "transaction":
            kwargs["statement_cache_size"] = 0
        return kwargs

    def safe(self) -> str:
        """For messages: no password."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
        user = f"{self.username}@" if self.username else ""
        return f"postgresql://{user}{hosts}/{self.database or ''}"


def is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def is_multi_host(url: str) -> bool:
    """A host list in the authority part (``h1:p1,h2:p2``), which only :func:`parse` reads."""
    if not is_postgres(url) or "://" not in url:
        return False
    authority = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    return "," in authority.rpartition("@")[2]


def sqlalchemy_url(url: str, driver: str) -> URL:
    """Any URL Coinpurse accepts, as SQLAlchemy's URL for ``driver``."""
    if is_multi_host(url):
        return parse(url).sqlalchemy(driver)
    return make_url(url.replace("postgres://", "postgresql://", 1)).set(drivername=driver)


def connect_kwargs(url: str, options: DbOptions | None = None) -> dict[str, Any]:
    """``asyncpg.connect`` arguments for a connection of our own (the key cache's LISTEN)."""
    options = options or DbOptions()
    if is_multi_host(url):
        return parse(url).asyncpg_kwargs(options)
    kwargs: dict[str, Any] = {
        "dsn": sqlalchemy_url(url, "postgresql").render_as_string(hide_password=False),
        "timeout": options.connect_timeout_s, "command_timeout": options.command_timeout_s}
    if options.pooling == "transaction":
        kwargs["statement_cache_size"] = 0
    return kwargs


def safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        if is_multi_host(url):
            return parse(url).safe()
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the database"


def parse(url: str) -> PgUrl:
    """Parse ``postgresql://[user[:pass]@]host[:port][,host[:port]...]/db[?params]``.

    Raises ValueError with a message meant for the operator."""
    scheme, sep, rest = url.partition("://")
    if not sep or not is_postgres(scheme):
        raise ValueError("must start with postgresql://")
    rest, _, query_text = rest.partition("?")
    authority, _, path = rest.partition("/")
    userinfo, at, hostlist = authority.rpartition("@")
    if not at:
        hostlist = authority
    username = password = None
    if userinfo:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    hosts = tuple(_host(h) for h in hostlist.split(",")) if hostlist else ()
    if not hosts:
        raise ValueError("needs a host, e.g. postgresql://user:pass@db1:5432/coinpurse")
    query = tuple(parse_qsl(query_text, keep_blank_values=True))
    names = [k for k, _ in query]
    for name in ("host", "port"):
        if name in names:
            raise ValueError(f"write hosts as host:port in the URL, not as a {name}= parameter")
    if len(set(names)) != len(names):
        raise ValueError("a query parameter is repeated")
    attrs = dict(query).get("target_session_attrs")
    if attrs is not None and attrs not in SESSION_ATTRS:
        raise ValueError(f"target_session_attrs must be one of {', '.join(SESSION_ATTRS)}")
    return PgUrl(hosts=hosts, database=unquote(path) or None, username=username,
                 password=password, query=query)


def _host(text: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [::1]:5432
        host, _, tail = text[1:].partition("]")
        port_text = tail.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError("an empty host in the host list")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{port_text!r} is not a port")
    return host, int(port_text)
