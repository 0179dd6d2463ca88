"""A TCP proxy in front of PostgreSQL that fails on command: real network faults, on this
machine, for the connection-handling tests.

It reads the client's side of the wire protocol (message type and length) so that it can
cut a connection exactly around one message: ``arm(b"COMMIT", after=True)`` forwards the
COMMIT to the server and drops the connection instead of forwarding the server's answer
(committed, answer lost); ``after=False`` drops it without forwarding (rolled back, and the
client cannot tell). ``blackhole()`` stops forwarding while keeping sockets open (a server
that hangs), ``reset_all()`` drops every connection (a restart), ``upstream`` can move.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from dataclasses import dataclass, field

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


@dataclass
class _Trigger:
    pattern: bytes
    after: bool
    fired: int = 0


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    drop_on_reply: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for w in (self.client, self.server):
            with contextlib.suppress(Exception):
                w.transport.abort()


class FaultProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream = upstream_port
        self.port = 0
        self._trigger: _Trigger | None = None
        self._blackhole = False
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True, name="fault-proxy")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")

    # -- control, from the test's thread ------------------------------------------------
    def arm(self, pattern: bytes, *, after: bool) -> None:
        self._trigger = _Trigger(pattern, after)

    @property
    def fired(self) -> int:
        return self._trigger.fired if self._trigger else 0

    def disarm(self) -> None:
        self._trigger = None

    def blackhole(self, on: bool = True) -> None:
        self._blackhole = on

    def reset_all(self) -> None:
        self._loop.call_soon_threadsafe(self._reset)

    def connections(self) -> int:
        return len(self._links)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        self._blackhole = False
        self._reset()
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the loop --------------------------------------------------------------------------
    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, self.host, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.close()

    def _reset(self) -> None:
        for link in list(self._links):
            link.close()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._flowing()  # a server that does not answer: the client's timeout decides
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [asyncio.ensure_future(self._client_to_server(link, reader)),
                      asyncio.ensure_future(self._server_to_client(link, up_reader))]
        await asyncio.gather(*link.tasks, return_exceptions=True)
        link.close()
        self._links.discard(link)

    async def _client_to_server(self, link: _Link, reader: asyncio.StreamReader) -> None:
        try:
            # Untyped start: SSL or GSS request (answered by one byte), then the startup.
            while True:
                head = await reader.readexactly(8)
                length, code = struct.unpack("!ii", head)
                body = await reader.readexactly(length - 8)
                await self._send(link.server, head + body)
                if code not in (SSL_REQUEST, GSSENC_REQUEST):
                    break
            while True:
                head = await reader.readexactly(5)
                (length,) = struct.unpack("!i", head[1:])
                message = head + await reader.readexactly(length - 4)
                trigger = self._trigger
                if trigger is not None and trigger.fired == 0 and trigger.pattern in message:
                    trigger.fired += 1
                    if not trigger.after:
                        link.close()
                        return
                    link.drop_on_reply = True
                await self._send(link.server, message)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            link.close()

    async def _server_to_client(self, link: _Link, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if link.drop_on_reply:  # the server has done it; the client never hears
                    link.close()
                    return
                await self._send(link.client, data)
        except (ConnectionError, OSError):
            pass
        link.close()

    async def _flowing(self) -> None:
        """Return once no blackhole is on (set from another thread, hence a poll)."""
        while self._blackhole:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        await self._flowing()
        writer.write(data)
        await writer.drain()
