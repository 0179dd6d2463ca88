"""A webhook receiver on 127.0.0.1 for the tests: a real HTTP server in a thread that
records every request and answers as told (fail the first N, hang, ...)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """``answer(n)`` gives the status of the n-th request (from 0); ``hang_s(n)`` how long
    to wait before answering it."""

    answer: Callable[[int], int] = lambda _n: 204
    hang_s: Callable[[int], float] = lambda _n: 0.0
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    n = len(receiver.received)
                    status = receiver.answer(n)
                    receiver.received.append(Received(
                        {k.lower(): v for k, v in self.headers.items()}, body, status))
                time.sleep(receiver.hang_s(n))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def delivered(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]
