"""uvicorn's httptools protocol, writing each answer's head and body in one system call.

uvicorn writes the status line and headers when the app sends ``http.response.start`` and
the body when it sends ``http.response.body``: two ``write()`` system calls, two TCP
segments and two wake-ups of the client for every answer. In a profile of ``coinpurse
serve`` under load those writes were about a tenth of the CPU time (bench/, issue 16).
Here the head is held until the next write of the same answer (the body, which for every
non-streamed answer follows in the same turn of the event loop) and both go out together;
a head with nothing after it in that turn (a HEAD request, a stream whose first chunk comes
later) is written at the end of the turn. uvicorn still parses, frames and checks every
message: only the moment of the head's write changes, never the bytes or their order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A body above this is written after the head rather than copied behind it.
JOIN_MAX = 64 * 1024


class JoinedWrites:
    """The transport one answer is written to: its first write (the head, or a 100
    Continue) waits for the next one or for the end of the loop's turn."""

    __slots__ = ("_first", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._first = True

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._held = data
            self._loop.call_soon(self.flush)
            return
        held, self._held = self._held, None
        if held is None:
            self._transport.write(data)
        elif len(data) <= JOIN_MAX:
            self._transport.write(held + data)
        else:
            self._transport.write(held)
            self._transport.write(data)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, ...
        return getattr(self._transport, name)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """``coinpurse serve``'s HTTP/1.1 protocol (``uvicorn.run(http=...)``)."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not before:  # a new answer's cycle
            self.cycle.transport = JoinedWrites(self.transport, self.loop)  # type: ignore[assignment]
