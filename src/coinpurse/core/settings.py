"""Settings, read once from ``COINPURSE_*`` environment variables and validated at start-up.

Each domain declares its own section (a subclass of ``CoreSettings`` in its ``settings.py``)
with typed values: a format such as ``points:0,usdt:2`` is parsed once, while the settings
are validated, into the objects the code uses. ``coinpurse.config.Settings`` combines the
sections. A bad value stops the process with a message naming the variable, instead of
failing later on the first request that needs it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from coinpurse.core import runtime
from coinpurse.core.cluster import urls
from coinpurse.core.cluster.urls import DbOptions

PREFIX = "COINPURSE_"
# Read by the tools around the service, not by the service itself.
TOOL_VARIABLES = frozenset({
    "COINPURSE_ADMIN_PASSWORD",  # coinpurse admin create
    "COINPURSE_PG_BINDIR",  # tests and bench: where PostgreSQL's binaries are
    "COINPURSE_TEST_PG_URL",  # tests: an existing PostgreSQL database
    "COINPURSE_MIGRATE",  # the container's entrypoint: migrate before serve/worker (1/0)
    "COINPURSE_DB_WAIT_TRIES",  # ... how often to try the database first
    "COINPURSE_DB_WAIT_S",  # ... and how long to wait between tries
})


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class CoreSettings(BaseSettings):
    """What every part of Coinpurse needs: where the database is, how to log."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    database_url: str = "sqlite:///./coinpurse.db"
    db_pool_size: int = Field(default=20, ge=1, le=200)
    # A PostgreSQL cluster (docs/high-availability.md): bounded waits on a dead server,
    # PgBouncer in transaction mode, a direct URL for LISTEN and migrations, and optional
    # history reads from a standby.
    db_connect_timeout_s: float = Field(default=5.0, gt=0, le=300)
    db_command_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    db_pooling: Literal["session", "transaction"] = "session"
    direct_database_url: str | None = None
    read_database_url: str | None = None
    # The garbage collector of serve and worker processes (core/runtime.py).
    gc_thresholds: str = "10000,20,50"
    gc_freeze: bool = True
    log_level: str = "info"
    # json (one object per line), console (readable), or auto: console on a terminal.
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("database_url", "direct_database_url", "read_database_url")
    @classmethod
    def _check_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (value is None or value.strip() == "") and info.field_name != "database_url":
            return None
        assert value is not None
        if not value.startswith(("sqlite://", "sqlite+", "postgresql://", "postgres://",
                                 "postgresql+")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        if urls.is_multi_host(value):
            urls.parse(value)  # a ValueError names what is wrong
        return value

    @model_validator(mode="after")
    def _check_cluster(self) -> CoreSettings:
        extra = [n for n in ("direct_database_url", "read_database_url") if getattr(self, n)]
        if self.is_sqlite and (extra or self.db_pooling != "session"):
            names = [f"{PREFIX}{n.upper()}" for n in extra]
            if self.db_pooling != "session":
                names.append(f"{PREFIX}DB_POOLING")
            raise ValueError(", ".join(names) + " need PostgreSQL")
        return self

    @field_validator("gc_thresholds")
    @classmethod
    def _check_gc(cls, value: str) -> str:
        runtime.parse_thresholds(value)
        return value

    @property
    def gc_threshold_values(self) -> tuple[int, int, int]:
        return runtime.parse_thresholds(self.gc_thresholds)

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return value.lower()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def db_options(self) -> DbOptions:
        """For ``database_url`` (which may go through PgBouncer)."""
        return DbOptions(connect_timeout_s=self.db_connect_timeout_s,
                         command_timeout_s=self.db_command_timeout_s, pooling=self.db_pooling)

    @property
    def direct_db(self) -> tuple[str, DbOptions]:
        """A session-capable URL for LISTEN and migrations: the direct URL if set."""
        if self.direct_database_url:
            return self.direct_database_url, replace(self.db_options, pooling="session")
        return self.database_url, self.db_options


def parse_int(text: str, what: str, lo: int = 1, hi: int = 2**63 - 1) -> int:
    if not text.isascii() or not text.isdigit() or not lo <= int(text) <= hi:
        raise ValueError(f"{what} must be an integer from {lo} to {hi}, not {text!r}")
    return int(text)


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S]) -> S:
    """Read the environment; raise ConfigError with one line per bad variable."""
    try:
        return cls()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["loc"]:
                lines.append(f"{PREFIX}{str(err['loc'][0]).upper()}: {msg}")
            else:
                lines.append(msg)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def unknown_variables(fields: Iterable[str],
                      environ: Mapping[str, str] | None = None) -> list[str]:
    """``COINPURSE_*`` variables no setting reads, each with a suggestion if one is close: a
    typo (``COINPURSE_CURRENCY``) would otherwise leave the default in force unnoticed."""
    env = os.environ if environ is None else environ
    known = {PREFIX + f.upper() for f in fields} | TOOL_VARIABLES
    found = []
    for name in sorted(n for n in env if n.upper().startswith(PREFIX)):
        if name.upper() in known:
            continue
        close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.75)
        found.append(f"{name}" + (f" (did you mean {close[0]}?)" if close else ""))
    return found
