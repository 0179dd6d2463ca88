"""Multi-host URLs as operators write them, and the settings that go with a cluster."""

from __future__ import annotations

import pytest

from coinpurse.config import ConfigError, Settings, load_settings
from coinpurse.core.cluster import urls
from coinpurse.core.db import async_url, pg_connect_args


def test_host_list_becomes_host_parameters() -> None:
    url = "postgresql://app:s%40cret@db1:5433,db2,[::1]:6000/coinpurse?target_session_attrs=read-write"
    parsed = urls.parse(url)
    assert parsed.hosts == (("db1", 5433), ("db2", 5432), ("::1", 6000))
    assert parsed.password == "s@cret" and parsed.username == "app"
    sa = async_url(url)
    assert sa.drivername == "postgresql+asyncpg" and sa.host is None
    assert sa.query["host"] == ("db1:5433", "db2:5432", "::1:6000")
    assert sa.query["target_session_attrs"] == "read-write"
    assert sa.database == "coinpurse" and sa.password == "s@cret"
    kwargs = parsed.asyncpg_kwargs(urls.DbOptions(connect_timeout_s=2, command_timeout_s=3))
    assert kwargs["host"] == ["db1", "db2", "::1"] and kwargs["port"] == [5433, 5432, 6000]
    assert kwargs["timeout"] == 2 and kwargs["command_timeout"] == 3
    assert kwargs["target_session_attrs"] == "read-write"
    assert "s@cret" not in urls.safe(url)


def test_single_host_urls_are_unchanged() -> None:
    assert not urls.is_multi_host("postgresql://u:p@h:5432/db")
    assert async_url("postgres://u:p@h/db").render_as_string(hide_password=False) == \
        "postgresql+asyncpg://u:p@h/db"
    assert async_url("postgresql:///db?host=/run/postgresql").query["host"] == "/run/postgresql"


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://h1,:5432/db", "empty host"),
    ("postgresql://h1,h2:99999/db", "not a port"),
    ("postgresql://h1,h2/db?target_session_attrs=master", "target_session_attrs"),
    ("postgresql://h1,h2/db?host=h3", "host:port in the URL"),
])
def test_bad_cluster_urls_name_the_variable(url: str, message: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINPURSE_DATABASE_URL", url)
    with pytest.raises(ConfigError, match=f"COINPURSE_DATABASE_URL: .*{message}"):
        load_settings()


def test_cluster_settings_need_postgresql() -> None:
    with pytest.raises(ValueError, match="COINPURSE_READ_DATABASE_URL"):
        Settings(database_url="sqlite:///x.db", read_database_url="postgresql://h/db")
    with pytest.raises(ValueError, match="COINPURSE_DB_POOLING"):
        Settings(database_url="sqlite:///x.db", db_pooling="transaction")


def test_transaction_pooling_uses_no_named_statement() -> None:
    s = Settings(database_url="postgresql://pgbouncer:6432/db", db_pooling="transaction",
                 direct_database_url="postgresql://db1:5432/db")
    args = pg_connect_args(s.db_options)
    assert args["prepared_statement_cache_size"] == 0 and args["statement_cache_size"] == 0
    assert args["prepared_statement_name_func"]() == ""  # unnamed: gone with the transaction
    url, options = s.direct_db
    assert url == "postgresql://db1:5432/db" and options.pooling == "session"
    assert "prepared_statement_name_func" not in pg_connect_args(
        Settings(database_url="postgresql://h/db").db_options)


def test_transient_faults_are_network_and_failover_errors_only() -> None:
    import errno

    import asyncpg

    from coinpurse.core.cluster.faults import is_transient

    assert is_transient(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert is_transient(TimeoutError())
    assert is_transient(OSError("Multiple exceptions: [Errno 111] Connect call failed"))
    assert is_transient(asyncpg.ConnectionDoesNotExistError("closed"))
    assert is_transient(asyncpg.exceptions.ReadOnlySQLTransactionError("read only"))
    assert is_transient(asyncpg.exceptions.SerializationError("retry"))
    assert not is_transient(FileNotFoundError(errno.ENOENT, "nope"))
    assert not is_transient(asyncpg.exceptions.UniqueViolationError("dup"))
    assert not is_transient(ValueError("bug"))
