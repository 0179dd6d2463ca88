"""A throw-away PostgreSQL server for the tests, from the machine's PostgreSQL binaries.

No Docker: ``initdb`` into a temporary folder and ``pg_ctl start`` on a free port. As root,
the server runs as the ``postgres`` user (PostgreSQL refuses to run as root).

The tests run it with ``fsync=off`` (fast, nothing to keep). The benchmark passes
``durable=True`` (``fsync``, ``full_page_writes`` and ``synchronous_commit`` on, as in
production) and its own ``settings``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path


def find_bindir() -> Path:
    env = os.environ.get("COINPURSE_PG_BINDIR")
    if env:
        return Path(env)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                        key=lambda p: int(p.split("/")[-2]), reverse=True)
    for c in candidates:
        if (Path(c) / "initdb").exists():
            return Path(c)
    which = shutil.which("initdb")
    if which:
        return Path(which).resolve().parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: install Debian's postgresql package "
        "(scripts/test does) or set COINPURSE_PG_BINDIR"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, *, durable: bool = False,
                 settings: Mapping[str, str] | None = None) -> None:
        """``durable``: fsync on (the default is off, for tests); ``settings``: more ``-c``
        options, which override the defaults."""
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="coinpurse-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        durability = "on" if durable else "off"
        self.settings: dict[str, str] = {
            "listen_addresses": "127.0.0.1",
            "fsync": durability,
            "full_page_writes": durability,
            "max_connections": "300",
            "shared_buffers": "128MB",
        }
        if durable:
            self.settings["synchronous_commit"] = "on"
        self.settings.update(settings or {})

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "-N")
        opts = f"-p {self.port} -k {self.root} " + " ".join(
            f"-c {name}={value}" for name, value in self.settings.items()
        )
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "log"), "-o", opts, "-w", "-t", "60", "start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not start; see " + str(self.root / "log"))

    def createdb(self, name: str) -> str:
        self._run(str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", name)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
