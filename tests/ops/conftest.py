"""Helpers of the operations tests."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from coinpurse.auth import keys
from coinpurse.core.db import create_engine
from tests.pgserver import free_port


def create_key(db_url: str, service: str = "games", scopes: str = "*") -> str:
    async def make() -> str:
        engine = create_engine(db_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                _, secret = await keys.create_key(conn, service, scopes)
        finally:
            await engine.dispose()
        return secret

    return asyncio.run(make())


@pytest.fixture
def make_key_sync() -> Callable[..., str]:
    return create_key


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server of our own (Debian's; scripts/test installs it), in memory."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
