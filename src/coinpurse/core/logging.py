"""Structured logs: one JSON object per line (or a readable line on a terminal), for
``serve``, ``worker`` and every CLI command.

Our own code logs with structlog (``get_logger``); the standard library's loggers (uvicorn,
alembic, every ``logging.getLogger``) go through the same processors, so every line has the
same shape. Lines are rendered where they are logged (with the current request's id) and
written by a thread: a slow or full stderr never blocks the event loop. A redaction step
drops what must never reach a log: keys, tokens, passwords, TOTP secrets, card numbers.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import re
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import orjson
import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
FORMATS = ("auto", "json", "console")
QUEUE_MAX = 100_000  # lines waiting for the writer; beyond that lines are dropped, counted
REDACTED = "[redacted]"
QUIET_LIBRARIES = ("aiosqlite", "asyncpg", "httpcore", "httpx", "hpack", "coredis", "stripe",
                   "urllib3", "requests", "multipart", "python_multipart", "watchfiles")


@dataclass(slots=True)
class RequestInfo:
    """What the HTTP edge learns about one request, filled in as it goes: its id for every
    log line and problem body, who called (for the access line), the tightest rate limit
    (for the ``RateLimit-*`` headers)."""

    request_id: str
    principal: str | None = None
    # The tightest rate limit passed: limit, remaining, seconds to reset, window seconds.
    rate_limit: tuple[int, int, int, int] | None = None


CURRENT_REQUEST: ContextVar[RequestInfo | None] = ContextVar("coinpurse_request", default=None)


def current_request() -> RequestInfo | None:
    return CURRENT_REQUEST.get()


def current_request_id() -> str | None:
    info = CURRENT_REQUEST.get()
    return info.request_id if info is not None else None


# --- redaction ---------------------------------------------------------------------------

# Keys whose values are secrets, whatever they look like.
_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|x-api-key|authorization|cookie|totp|otp|"
    r"recovery|signature|card|cvc|cvv|pan$|private|credential|csrf", re.IGNORECASE)
# Values that are secrets wherever they appear: JWTs, bearer credentials, our service keys,
# PEM keys, TOTP provisioning URIs.
_SECRET_VALUE = re.compile(
    r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|cp[a-z]?_[A-Za-z0-9_-]{16,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)"
    r"|otpauth://\S+"
)
# Card numbers: 13 to 19 digits, bare or in groups of four, that pass the Luhn check.
_CARD = re.compile(r"(?<![\w-])(?:\d{4}[ -]){3}\d{1,7}(?![\w-])|(?<![\w-])\d{13,19}(?![\w-])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return REDACTED if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def redact_text(text: str) -> str:
    if "eyJ" in text or "cp" in text or "earer" in text or "-----" in text or \
            "otpauth" in text:
        text = _SECRET_VALUE.sub(REDACTED, text)
    if len(text) >= 13 and any(c.isdigit() for c in text):
        text = _CARD.sub(_card, text)
    return text


def _redact(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if depth > 4:
        return value
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else
                    _redact(v, depth + 1)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, depth + 1) for v in value]
    return value


# Fields the logging itself writes, from values it controls: not searched (they run on every
# access line).
_OURS = frozenset({"ts", "level", "logger", "request_id", "method", "route", "status",
                   "duration_ms"})


@functools.lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: secrets out of every key and value of the line."""
    for key, value in list(event.items()):
        if key in _OURS:
            continue
        if _secret_key(key):
            event[key] = REDACTED
        elif isinstance(value, str | dict | list | tuple):
            event[key] = _redact(value)
    return event


def _add_request_id(_logger: Any, _name: str,
                    event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    info = CURRENT_REQUEST.get()
    if info is not None and "request_id" not in event:
        event["request_id"] = info.request_id
    return event


# --- the writer ----------------------------------------------------------------------------

class _Writer:
    """Writes rendered lines on its own thread. Lines go on a deque (no lock, no wake-up per
    line: the writer looks every ``DRAIN_EVERY_S``), so logging costs a request one append."""

    DRAIN_EVERY_S = 0.05

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lines: collections.deque[str] = collections.deque()
        self.dropped = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="coinpurse-log", daemon=True)
        self.thread.start()

    def put(self, line: str) -> None:
        if len(self.lines) >= QUEUE_MAX:
            self.dropped += 1
            return
        self.lines.append(line)

    def _drain(self) -> None:
        lines = self.lines
        while lines:
            batch: list[str] = []
            while lines and len(batch) < 1000:
                batch.append(lines.popleft())
            try:
                self.stream.write("\n".join(batch) + "\n")
            except Exception:  # a closed or broken stream must not kill the writer
                return
        if self.dropped:
            n, self.dropped = self.dropped, 0
            with contextlib.suppress(Exception):
                self.stream.write(orjson.dumps({"level": "warning",
                                                "event": f"{n} log lines dropped"}).decode()
                                  + "\n")
        with contextlib.suppress(Exception):
            self.stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.DRAIN_EVERY_S):
            if self.lines:
                self._drain()
        self._drain()

    def close(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self.thread.join(timeout_s)


class _DirectWriter(_Writer):
    """After ``flush()`` (at shutdown): lines are written at once, on the caller's thread,
    so the last lines of a process that is about to exit are not lost."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.dropped = 0

    def put(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except Exception:
            pass

    def close(self, timeout_s: float = 2.0) -> None:
        return None


class _QueueLogger:
    """structlog's output: a rendered line, handed to the writer of the moment."""

    def msg(self, line: str) -> None:
        if _writer is not None:
            _writer.put(line)

    info = debug = warning = error = critical = exception = log = msg


class _QueueHandler(logging.Handler):
    """The standard library's records, rendered here (where the request id is known) by
    the same processors, then handed to the writer."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if _writer is not None:
                _writer.put(self.format(record))
        except Exception:
            self.handleError(record)


_writer: _Writer | None = None


def _json_renderer(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> str:
    return orjson.dumps(event, default=str).decode()


def configure(level: str = "info", fmt: str = "auto", stream: IO[str] | None = None) -> None:
    """Set up structlog and the standard library's logging for this process (again if
    called again: the last call wins)."""
    global _writer, _json_lines, _access_on
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    _json_lines = fmt == "json"
    _access_on = LEVELS[level] <= logging.INFO
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=stream.isatty()) if fmt == "console"
                     else _json_renderer)
    pre_chain: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _add_request_id,
    ]
    tail: list[Any] = [
        structlog.processors.format_exc_info,
        redact,
    ]
    if _writer is not None:
        _writer.close()
    _writer = _Writer(stream)
    structlog.configure(
        processors=[*pre_chain, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=lambda *_a: _QueueLogger(),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *pre_chain],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail,
                    renderer],
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _QueueHandler):  # ours from an earlier call; others stay
            root.removeHandler(handler)
    root.addHandler(_QueueHandler(formatter))
    root.setLevel(LEVELS[level])
    # uvicorn's own access log is off (ours has the route and the principal); its error
    # log and the libraries' warnings come through the root handler.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # `migrate` reports itself
    # Drivers and clients whose debug lines carry statements' parameters and request
    # bodies: never below info, whatever the level.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(LEVELS[level], logging.INFO))


def flush(timeout_s: float = 2.0) -> None:
    """Write everything queued, and write later lines at once (at shutdown: the process may
    end by a re-raised signal, with no chance to drain a queue)."""
    global _writer
    if _writer is not None:
        _writer.close(timeout_s)
        _writer = _DirectWriter(_writer.stream)


_json_lines = True
_access_on = True


def access(method: str, route: str, status: int, duration_ms: float, principal: str | None,
           request_id: str) -> None:
    """The access line of one request. Its fields are all written by the HTTP edge from
    values it controls (a route template, never a raw path), so in JSON it skips the
    processors: this runs on every request."""
    if not _access_on:
        return
    if _json_lines and _writer is not None:
        _writer.put(orjson.dumps({
            "event": "request", "method": method, "route": route, "status": status,
            "duration_ms": duration_ms, "principal": principal, "request_id": request_id,
            "level": "info", "logger": "coinpurse.access",
            "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }).decode())
        return
    structlog.get_logger("coinpurse.access").info(
        "request", method=method, route=route, status=status, duration_ms=duration_ms,
        principal=principal, request_id=request_id)


def get_logger(name: str = "coinpurse") -> Any:
    return structlog.get_logger(name)


@contextlib.contextmanager
def request_context(info: RequestInfo) -> Iterator[RequestInfo]:
    token = CURRENT_REQUEST.set(info)
    try:
        yield info
    finally:
        CURRENT_REQUEST.reset(token)
