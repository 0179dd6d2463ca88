"""The failover drill: pg_auto_failover on 127.0.0.1, two API processes, a load of
transfers, the primary killed mid-load, then every lost answer retried and the ledger checked.

Used by ``scripts/failover-drill`` (full size, prints a report) and by
``tests/cluster/test_failover_drill.py`` (CI size, asserts the same checks).

The topology: a monitor, a primary and a synchronous standby (pg_auto_failover's default
for two data nodes: ``synchronous_standby_names = 'ANY 1 (...)'``, ``synchronous_commit =
on``), each a ``pg_autoctl`` keeper supervising its PostgreSQL, in a temporary folder.
The API processes use one multi-host URL with ``target_session_attrs=read-write``.

"Killing the primary" SIGKILLs the primary node's whole process group (its keeper and its
PostgreSQL, with every backend), as a machine loss would: killing PostgreSQL alone lets its
keeper restart it in place, which is a restart, not a failover.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.invariants import ledger_state_async
from tests.pgserver import find_bindir, free_port

MONITOR_SETTINGS = {
    # Fast failure detection for a drill on one machine. Production keeps the defaults
    # (5 s checks, 20 s before a node is unhealthy, 30 s demote timeout): the demote timeout
    # is what stops a partitioned old primary from accepting writes while the standby is
    # promoted.
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "2000",
    "pgautofailover.primary_demote_timeout": "3000",
}
USERS = [f"d{i}" for i in range(24)]
CURRENCY = "points"
PRIME = 10_000


@dataclass
class Node:
    name: str
    port: int
    pgdata: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None


class Formation:
    """A pg_auto_failover monitor and two data nodes, all on 127.0.0.1."""

    def __init__(self, root: Path | None = None) -> None:
        self.bindir = find_bindir()
        self.root = root or Path(tempfile.mkdtemp(prefix="coinpurse-failover-"))
        self.as_root = os.geteuid() == 0
        self.monitor = Node("monitor", free_port(), self.root / "monitor",
                            self.root / "monitor.log")
        self.nodes = [Node(f"node{i}", free_port(), self.root / f"node{i}",
                           self.root / f"node{i}.log") for i in (1, 2)]

    # -- processes ---------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        r = str(self.root)
        return {"PATH": f"{self.bindir}:/usr/bin:/bin", "HOME": r, "LANG": "C.UTF-8",
                "XDG_CONFIG_HOME": f"{r}/config", "XDG_DATA_HOME": f"{r}/data",
                "XDG_RUNTIME_DIR": f"{r}/run", "PGHOST": r, "PG_REGRESS_SOCK_DIR": r}

    def _cmd(self, *args: str) -> list[str]:
        env = [f"{k}={v}" for k, v in self._env().items()]
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        return [*prefix, "env", "-i", *env, "pg_autoctl", *args]

    def _run(self, *args: str) -> str:
        done = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"pg_autoctl {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def _spawn(self, node: Node, *args: str) -> None:
        with node.log.open("ab") as log:
            node.proc = subprocess.Popen(self._cmd(*args), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def sql(self, port: int, query: str, db: str = "postgres") -> str:
        done = subprocess.run(
            [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
             "-d", db, "-Atq", "-c", query],
            capture_output=True, text=True, timeout=20)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip())
        return done.stdout.strip()

    def monitor_uri(self) -> str:
        return (f"postgres://autoctl_node@127.0.0.1:{self.monitor.port}/pg_auto_failover"
                "?sslmode=disable")

    # -- life cycle ----------------------------------------------------------------------
    def start(self, timeout_s: float = 180) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        m = self.monitor
        self._run("create", "monitor", "--pgdata", str(m.pgdata), "--pgport", str(m.port),
                  "--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl")
        # The monitor listens on every address unless told otherwise.
        self._run("config", "set", "--pgdata", str(m.pgdata), "postgresql.listen_addresses",
                  "127.0.0.1")
        self._spawn(m, "run", "--pgdata", str(m.pgdata))
        self._wait(lambda: self._try_sql(m.port, "SELECT 1", "pg_auto_failover") == "1",
                   timeout_s, "the monitor to start")
        for name, value in MONITOR_SETTINGS.items():
            self.sql(m.port, f"ALTER SYSTEM SET {name} = '{value}'", "pg_auto_failover")
        self.sql(m.port, "SELECT pg_reload_conf()", "pg_auto_failover")
        first, second = self.nodes
        self._create(first)
        self._wait(lambda: self.states().get(first.name, ("",))[0] in ("single",),
                   timeout_s, f"{first.name} to run as a single node")
        self._create(second)

        def synchronous_pair() -> bool:
            # pg_basebackup waits for a spread checkpoint: ask for an immediate one.
            self._try_sql(first.port, "CHECKPOINT")
            s = self.states()
            return (s.get(first.name, ("",))[0] == "primary"
                    and s.get(second.name, ("",))[0] == "secondary")

        self._wait(synchronous_pair, timeout_s, "a primary and a secondary", every_s=1.0)

    def _create(self, node: Node) -> None:
        self._spawn(node, "create", "postgres", "--pgdata", str(node.pgdata), "--pgport",
                    str(node.port), "--listen", "127.0.0.1", "--hostname", "127.0.0.1",
                    "--name", node.name, "--dbname", "coinpurse", "--monitor",
                    self.monitor_uri(), "--auth", "trust", "--no-ssl", "--run")

    def _try_sql(self, port: int, query: str, db: str = "postgres") -> str | None:
        try:
            return self.sql(port, query, db)
        except (RuntimeError, subprocess.TimeoutExpired):
            return None

    def _wait(self, ok: Any, timeout_s: float, what: str, every_s: float = 0.25) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(every_s)
        raise RuntimeError(f"timed out waiting for {what}; logs in {self.root}")

    def states(self) -> dict[str, tuple[str, str]]:
        """Each node's (reported, assigned) state, as the monitor sees them."""
        out = self._try_sql(self.monitor.port, "SELECT nodename, reportedstate, goalstate "
                            "FROM pgautofailover.node", "pg_auto_failover")
        states: dict[str, tuple[str, str]] = {}
        for line in (out or "").splitlines():
            name, reported, goal = line.split("|")
            states[name] = (reported, goal)
        return states

    def primary(self) -> Node:
        states = self.states()
        for node in self.nodes:
            if states.get(node.name, ("",))[0] in ("primary", "wait_primary", "single"):
                return node
        raise RuntimeError(f"no primary: {states}")

    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return f"postgresql://postgres@{hosts}/coinpurse?target_session_attrs=read-write"

    def sync_settings(self, node: Node) -> tuple[str, str]:
        return (self.sql(node.port, "SHOW synchronous_commit"),
                self.sql(node.port, "SHOW synchronous_standby_names"))

    def kill(self, node: Node) -> None:
        """SIGKILL the node's keeper and PostgreSQL (every process of its group)."""
        assert node.proc is not None
        postmaster = _postmaster_pid(node.pgdata)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.proc.pid, signal.SIGKILL)
        if postmaster is not None:  # should the keeper have started it in a group of its own
            for pid in [postmaster, *_children(postmaster)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        node.proc.wait(10)

    def promoted(self, node: Node) -> bool:
        if self.states().get(node.name, ("",))[0] not in ("wait_primary", "primary"):
            return False
        return self._try_sql(node.port, "SELECT pg_is_in_recovery()") == "f"

    def stop(self) -> None:
        procs = [n.proc for n in (*self.nodes, self.monitor) if n.proc is not None]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for node in (*self.nodes, self.monitor):  # a postmaster left behind
            pid = _postmaster_pid(node.pgdata)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


# -- the drill ---------------------------------------------------------------------------
@dataclass
class Sent:
    path: str
    body: dict[str, Any]
    api: int
    answer: int | None = None  # 201 / 422 when decided
    tx_id: str | None = None
    acked_during_load: bool = False
    before_kill: bool = True


@dataclass
class Report:
    transfers_sent: int = 0
    acked_during_load: int = 0
    refused: int = 0
    lost_answers: int = 0
    lost_in_flight: int = 0  # sent before the kill
    retried_posted: int = 0
    retried_replayed: int = 0
    promotion_s: float = 0.0
    unavailable_s: float = 0.0
    sync: tuple[str, str] = ("", "")
    problems: list[str] = field(default_factory=list)
    transactions: int = 0
    sums: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        ok = "PASSED" if not self.problems else "FAILED"
        lines = [
            f"failover drill {ok}",
            f"  replication before the kill: synchronous_commit={self.sync[0]}, "
            f"synchronous_standby_names={self.sync[1]!r}",
            f"  transfers sent: {self.transfers_sent} ({self.acked_during_load} acknowledged "
            f"during the load, {self.refused} refused, {self.lost_answers} answers lost: "
            f"{self.lost_in_flight} in flight at the kill, the rest 503 during the outage)",
            f"  lost answers retried with their keys: {self.retried_posted} posted now, "
            f"{self.retried_replayed} had committed (replayed)",
            f"  standby promoted {self.promotion_s:.1f} s after the kill; the service was "
            f"unavailable for {self.unavailable_s:.1f} s",
            f"  transactions: {self.transactions}; sum of balances per currency: {self.sums}",
        ]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        return "\n".join(lines)


def _transfer(rng: random.Random) -> tuple[str, dict[str, Any]]:
    a, b = rng.sample(USERS, 2)
    return "/internal/v1/transfers", {
        "postings": [{"source": f"user:{a}", "destination": f"user:{b}",
                      "amount": rng.randint(1, 60), "currency": CURRENCY}],
        "kind": "transfer", "description": "drill", "reference_id": uuid.uuid4().hex[:16]}


async def run_drill(*, clients: int = 12, before_kill_s: float = 4.0,
                    after_recovery_s: float = 4.0, unavailable_max_s: float = 60.0,
                    keep: bool = False, log: Any = print) -> Report:
    from tests.conftest import Server  # the test suite's `coinpurse serve` subprocess

    report = Report()
    formation = Formation()
    servers: list[Server] = []
    try:
        log("starting pg_auto_failover: a monitor, a primary and a synchronous standby ...")
        t0 = time.monotonic()
        formation.start()
        primary = formation.primary()
        standby = next(n for n in formation.nodes if n is not primary)
        report.sync = formation.sync_settings(primary)
        log(f"  up in {time.monotonic() - t0:.0f} s: primary {primary.name}:{primary.port}, "
            f"standby {standby.name}:{standby.port}")
        url = formation.url()
        env = {**os.environ, "COINPURSE_DATABASE_URL": url}
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "coinpurse", "migrate"], env=env,
            capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        created = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "coinpurse", "keys", "create", "--service",
                             "drill", "--scopes", "*", "--json"], env=env,
            capture_output=True, text=True, timeout=60)
        key = json.loads(created.stdout)["key"]
        api_env = {"COINPURSE_DB_CONNECT_TIMEOUT_S": "2", "COINPURSE_DB_COMMAND_TIMEOUT_S": "5",
                   "COINPURSE_DB_RETRY_S": "10", "COINPURSE_RATE_LIMIT_SERVICE": "off"}
        servers = [Server(url, workers=1, extra_env=api_env) for _ in range(2)]
        log(f"  two API processes: {', '.join(s.base_url for s in servers)}")
        sent = await _load_and_kill(formation, servers, key, report, clients=clients,
                                    before_kill_s=before_kill_s,
                                    after_recovery_s=after_recovery_s, log=log)
        log(f"  {report.lost_answers} answers lost; retrying them with their keys ...")
        await _retry_lost_and_check(servers, key, url, sent, report)
        if report.unavailable_s > unavailable_max_s:
            report.problems.append(f"unavailable for {report.unavailable_s:.1f} s, more "
                                   f"than the bound of {unavailable_max_s:.0f} s")
        return report
    finally:
        for s in servers:
            s.stop()
        if keep:
            log(f"  left running for inspection: {formation.root}")
        else:
            formation.stop()


async def _load_and_kill(formation: Formation, servers: list[Any], key: str, report: Report,
                         *, clients: int, before_kill_s: float, after_recovery_s: float,
                         log: Any) -> dict[str, Sent]:
    sent: dict[str, Sent] = {}
    headers = {"X-API-Key": key}
    https = [httpx.AsyncClient(base_url=s.base_url, timeout=30) for s in servers]
    try:
        for user in USERS:  # every user starts with money
            r = await https[0].post("/internal/v1/wallet/credit", json={
                "user_id": user, "currency": CURRENCY, "amount": PRIME,
                "description": "drill", "reference_id": "prime"},
                headers={**headers, "Idempotency-Key": f"prime-{user}"})
            if r.status_code != 201:
                raise RuntimeError(f"priming failed: {r.status_code} {r.text}")
        killed_at: float | None = None
        first_ok_after: float | None = None
        answered_again = asyncio.Event()
        stop_at: float | None = None
        t_start = time.monotonic()

        async def client(seed: int) -> None:
            nonlocal first_ok_after
            rng = random.Random(seed)
            while stop_at is None or time.monotonic() < stop_at:
                if time.monotonic() - t_start > 300:
                    return
                path, body = _transfer(rng)
                idem = uuid.uuid4().hex
                api = seed % len(https)
                item = Sent(path, body, api, before_kill=killed_at is None)
                sent[idem] = item
                began = time.monotonic()
                try:
                    r = await https[api].post(path, json=body,
                                              headers={**headers, "Idempotency-Key": idem})
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
                    continue
                if r.status_code in (201, 422):
                    item.answer = r.status_code
                    item.acked_during_load = r.status_code == 201
                    item.tx_id = r.json().get("id") if r.status_code == 201 else None
                    if (killed_at is not None and began >= killed_at
                            and first_ok_after is None and r.status_code == 201):
                        first_ok_after = time.monotonic()
                        answered_again.set()
                else:
                    await asyncio.sleep(0.2)  # 503: the answer is lost; retried at the end

        tasks = [asyncio.create_task(client(i)) for i in range(clients)]
        await asyncio.sleep(before_kill_s)
        victim = formation.primary()
        survivor = next(n for n in formation.nodes if n is not victim)
        log(f"SIGKILL {victim.name} (keeper and postgres) with "
            f"{sum(1 for s in sent.values() if s.answer is None)} requests in flight ...")
        await asyncio.to_thread(formation.kill, victim)
        killed_at = time.monotonic()
        while not await asyncio.to_thread(formation.promoted, survivor):
            if time.monotonic() - killed_at > 120:
                raise RuntimeError(f"no promotion after 120 s: {formation.states()}")
            await asyncio.sleep(0.2)
        report.promotion_s = time.monotonic() - killed_at
        log(f"  {survivor.name} promoted after {report.promotion_s:.1f} s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answered_again.wait(), 120)
        report.unavailable_s = ((first_ok_after or time.monotonic()) - killed_at)
        stop_at = time.monotonic() + after_recovery_s
        await asyncio.gather(*tasks)
    finally:
        for h in https:
            await h.aclose()
    report.transfers_sent = len(sent)
    report.acked_during_load = sum(s.acked_during_load for s in sent.values())
    report.refused = sum(s.answer == 422 for s in sent.values())
    report.lost_answers = sum(s.answer is None for s in sent.values())
    report.lost_in_flight = sum(s.answer is None and s.before_kill for s in sent.values())
    return sent


async def _retry_lost_and_check(servers: list[Any], key: str, url: str,
                                sent: dict[str, Sent], report: Report) -> None:
    headers = {"X-API-Key": key}
    async with httpx.AsyncClient(base_url=servers[1].base_url, timeout=30) as http:
        for idem, item in sent.items():
            if item.answer is not None and not item.acked_during_load:
                continue
            for _ in range(40):  # the same key, until a decided answer
                r = await http.post(item.path, json=item.body,
                                    headers={**headers, "Idempotency-Key": idem})
                if r.status_code in (201, 422):
                    break
                await asyncio.sleep(0.5)
            else:
                report.problems.append(f"{idem}: no decided answer after retries")
                continue
            replayed = r.headers.get("idempotent-replayed") == "true"
            if item.acked_during_load:
                # acknowledged before: must replay the very same transaction
                if r.status_code != 201 or r.json()["id"] != item.tx_id:
                    report.problems.append(f"{idem}: acknowledged {item.tx_id}, now "
                                           f"{r.status_code} {r.text[:200]}")
                continue
            item.answer = r.status_code
            item.tx_id = r.json().get("id") if r.status_code == 201 else None
            if replayed:
                report.retried_replayed += 1
            elif r.status_code == 201:
                report.retried_posted += 1
    state = await ledger_state_async(url)
    report.transactions = state["tx_count"]
    report.sums = state["sums"]
    posted = {i: s.tx_id for i, s in sent.items() if s.answer == 201}
    missing = [t for t in posted.values() if t not in state["tx_ids"]]
    if missing:
        report.problems.append(f"{len(missing)} acknowledged transfers are missing: "
                               f"{missing[:5]}")
    if len(set(posted.values())) != len(posted):
        report.problems.append("two keys answered with the same transaction")
    expected = len(USERS) + len(posted)
    if state["tx_count"] != expected:
        report.problems.append(f"{state['tx_count']} transactions, expected {expected} "
                               "(the primes and one per posted key): a transfer was "
                               "posted twice or lost")
    dupes = await _duplicated_keys(url)
    if dupes:
        report.problems.append(f"idempotency keys posted twice: {dupes[:5]}")
    if any(v != 0 for v in state["sums"].values()):
        report.problems.append(f"balances do not sum to zero: {state['sums']}")
    if state["negative"]:
        report.problems.append(f"negative user balances: {state['negative'][:5]}")
    if state["mismatched"]:
        report.problems.append(f"balances differ from their entries: {state['mismatched'][:5]}")


async def _duplicated_keys(url: str) -> list[str]:
    from sqlalchemy import text

    from coinpurse.core.db import create_engine

    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT idempotency_key FROM transactions WHERE idempotency_key IS NOT NULL "
                "GROUP BY idempotency_key HAVING count(*) > 1"))).scalars().all()
    finally:
        await engine.dispose()
    return list(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--before-kill-s", type=float, default=8.0)
    parser.add_argument("--after-recovery-s", type=float, default=8.0)
    parser.add_argument("--unavailable-max-s", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="leave the formation running")
    args = parser.parse_args()
    report = asyncio.run(run_drill(clients=args.clients, before_kill_s=args.before_kill_s,
                                   after_recovery_s=args.after_recovery_s,
                                   unavailable_max_s=args.unavailable_max_s, keep=args.keep))
    print(report.text())
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
