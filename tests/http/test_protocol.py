"""``coinpurse serve``'s HTTP protocol (http/protocol.py) writes an answer's head and body
in one system call, and otherwise answers exactly as uvicorn's httptools protocol does:
HEAD, streamed bodies, large bodies, pipelined requests, ``Expect: 100-continue``.

Each case runs the protocol over a real socket pair on the test's event loop; the server
side's transport is wrapped only to count its ``write`` calls."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from coinpurse.http.protocol import JOIN_MAX, OneWriteHttpProtocol

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """``/json``: a small answer; ``/big``: a body above JOIN_MAX; ``/stream``: two chunks a
    moment apart; ``/echo``: the request's body back."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b'{"ok":true}'
    if path == "/big":
        body = b"x" * (JOIN_MAX + 10)
    elif path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"two"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Counting:
    """The real transport, with its writes counted."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class Wrapper(asyncio.Protocol):
    """Hands the HTTP protocol the counting transport; forwards everything else."""

    def __init__(self, inner: asyncio.Protocol) -> None:
        self.inner = inner
        self.counting: Counting | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.counting = Counting(transport)
        self.inner.connection_made(self.counting)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)


async def exchange(protocol_class: type[HttpToolsProtocol], request: bytes,
                   answers: int = 1, then: bytes | None = None,
                   head_only: bool = False) -> tuple[bytes, list[bytes]]:
    """Send ``request`` (and ``then`` once a 100 Continue came), read ``answers`` complete
    answers; returns what the client read and the server's writes."""
    loop = asyncio.get_running_loop()
    config = Config(app=app, http=protocol_class, log_level="warning", lifespan="off")
    config.load()
    inner = protocol_class(config=config, server_state=ServerState(), app_state={},
                           _loop=loop)
    wrapper = Wrapper(inner)
    server_sock, client_sock = socket.socketpair()
    await loop.connect_accepted_socket(lambda: wrapper, server_sock)
    reader, writer = await asyncio.open_connection(sock=client_sock)
    writer.write(request)
    got = b""
    async with asyncio.timeout(5):
        if then is not None:
            got = await reader.readuntil(b"\r\n\r\n")
            assert got.startswith(b"HTTP/1.1 100 Continue")
            writer.write(then)
        while got.count(b"HTTP/1.1 200") < answers or not _complete(got, head_only):
            chunk = await reader.read(1 << 20)
            assert chunk, got
            got += chunk
    writer.close()
    assert wrapper.counting is not None
    return got, wrapper.counting.writes


def _complete(got: bytes, head_only: bool) -> bool:
    """The last answer is whole: its Content-Length reached, or its chunked end seen."""
    last = got[got.rfind(b"HTTP/1.1 200"):]
    head, sep, body = last.partition(b"\r\n\r\n")
    if not sep or head_only:
        return bool(sep)
    if b"transfer-encoding: chunked" in head:
        return body.endswith(b"0\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


GET = b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.parametrize("protocol_class", [OneWriteHttpProtocol, HttpToolsProtocol])
async def test_a_small_answer_is_one_write(protocol_class: type[HttpToolsProtocol]) -> None:
    got, writes = await exchange(protocol_class, GET)
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b'\r\n\r\n{"ok":true}')
    # uvicorn's own protocol writes the head and the body apart: the case this is about.
    assert len(writes) == (1 if protocol_class is OneWriteHttpProtocol else 2)
    assert b"".join(writes) == got


async def test_pipelined_requests_get_one_write_each_in_order() -> None:
    got, writes = await exchange(OneWriteHttpProtocol, GET + GET.replace(b"/json", b"/big"),
                                 answers=2)
    first, second = got.split(b"HTTP/1.1 200 OK")[1:]
    assert first.endswith(b'{"ok":true}') and second.endswith(b"x" * (JOIN_MAX + 10))
    # The big body is written after its head rather than copied behind it.
    assert len(writes) == 3 and writes[2] == b"x" * (JOIN_MAX + 10)


async def test_a_head_request_gets_its_head() -> None:
    got, writes = await exchange(OneWriteHttpProtocol,
                                 b"HEAD /json HTTP/1.1\r\nHost: t\r\n\r\n", head_only=True)
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\n")
    assert b"content-length: 11" in got and len(writes) == 1


async def test_a_streamed_answer_sends_its_head_before_the_next_chunk_is_ready() -> None:
    got, writes = await exchange(OneWriteHttpProtocol, GET.replace(b"/json", b"/stream"))
    assert got.endswith(b"4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n")
    # The head and the first chunk (sent in the same turn) together, then the rest.
    assert writes[0].startswith(b"HTTP/1.1 200 OK") and writes[0].endswith(b"4\r\none,\r\n")
    assert len(writes) == 2


async def test_expect_100_continue_is_answered_before_the_body_comes() -> None:
    got, writes = await exchange(
        OneWriteHttpProtocol,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n", then=b"hello")
    assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert got.endswith(b"\r\n\r\nhello")
    assert writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
