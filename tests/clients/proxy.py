"""A fault-injecting HTTP proxy in front of a real ``coinpurse serve``, for client tests.

Each request the proxy receives takes the next planned action (then ``forward``):

- ``forward``: pass it to the server and its answer back;
- ``drop``: pass it to the server, wait for the whole answer (so the server has committed),
  then close the client's connection without answering: the network failure a retry must
  survive without applying the request twice;
- ``Reply(status, headers, body)``: answer without reaching the server, as a gateway or an
  overloaded load balancer does (503 with ``Retry-After``).

One request per connection (``Connection: close``), which keeps the parsing trivial: the
clients under test send bodies with ``Content-Length``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from tests.pgserver import free_port


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def encode(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} Proxy", f"Content-Length: {len(self.body)}",
                 "Connection: close", *(f"{k}: {v}" for k, v in self.headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


Action = Literal["forward", "drop"] | Reply


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    action: str


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.seen: list[Seen] = []
        self._plan: deque[Action] = deque()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")

    def plan(self, *actions: Action) -> None:
        with self._lock:
            self._plan.extend(actions)

    def requests(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path.split("?")[0] == path]

    def _next(self) -> Action:
        with self._lock:
            return self._plan.popleft() if self._plan else "forward"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        method, target, _ = request_line.split(" ", 2)
        action = self._next()
        with self._lock:
            self.seen.append(Seen(method, target, headers,
                                  action if isinstance(action, str) else str(action.status)))
        try:
            if isinstance(action, Reply):
                writer.write(action.encode())
                await writer.drain()
                return
            answer = await self._forward(request_line, headers, body)
            if action == "forward":
                writer.write(answer)
                await writer.drain()
        finally:
            writer.close()

    async def _forward(self, request_line: str, headers: dict[str, str], body: bytes) -> bytes:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        sent = {**headers, "connection": "close", "host": f"127.0.0.1:{self.upstream_port}"}
        head = request_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items())
        up_writer.write(head.encode("latin-1") + b"\r\n" + body)
        await up_writer.drain()
        answer = await up_reader.read()  # until the server closes: the whole answer
        up_writer.close()
        return answer

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
