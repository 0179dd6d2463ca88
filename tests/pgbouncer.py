"""A throw-away PgBouncer (Debian's ``pgbouncer``) in transaction pooling mode, in front of
a test PostgreSQL server. As root it drops to the ``postgres`` user (``-u``), as PgBouncer
refuses to run as root."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.pgserver import free_port


def find_pgbouncer() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer"
                                          if Path("/usr/sbin/pgbouncer").exists() else None)
    if found is None:
        raise RuntimeError("pgbouncer not found: install Debian's pgbouncer package "
                           "(scripts/test does)")
    return found


class PgBouncer:
    def __init__(self, upstream_port: int, *, pool_mode: str = "transaction",
                 pool_size: int = 20) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="coinpurse-pgbouncer-"))
        self.log = self.root / "pgbouncer.log"
        (self.root / "users.txt").write_text('"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(f"""\
[databases]
* = host=127.0.0.1 port={upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.root}/users.txt
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 1000
logfile = {self.log}
pidfile = {self.root}/pgbouncer.pid
admin_users = postgres
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [find_pgbouncer()]
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            for f in self.root.iterdir():
                shutil.chown(f, "postgres", "postgres")
            cmd += ["-u", "postgres"]
        self.proc = subprocess.Popen([*cmd, str(self.root / "pgbouncer.ini")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("pgbouncer exited: " + self.log_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pgbouncer did not start: " + self.log_text())

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)
