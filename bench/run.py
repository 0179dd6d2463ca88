"""The Coinpurse benchmark: pgbench as the reference, then Coinpurse over HTTP with wrk.

Run it with ``bench/run`` (which sets everything up); see bench/README.md. In one run:

1. a PostgreSQL server of its own (fsync on; the same settings for everything below);
2. ``pgbench`` TPC-B-like, scale 10, 32 clients, 2 threads: the reference TPS;
3. ``coinpurse serve --workers 2`` (``--workers N``) on that server: uniform, hot, batch
   and reads scenarios;
4. ``coinpurse serve --workers 1`` on SQLite: the uniform scenario;

with ``coinpurse check --json`` after each scenario. Results go to bench/results/ as Markdown
and JSON (latest.* and a timestamped copy).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.pgserver import PgServer

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "wrk" / "coinpurse.lua"
RESULTS = BENCH / "results"
VENV_BIN = Path(sys.executable).parent
COINPURSE = str(VENV_BIN / "coinpurse")

# The PostgreSQL settings of the whole run, pgbench and Coinpurse alike (fsync, full page
# writes and synchronous commit are on: durable=True).
PG_SETTINGS: dict[str, str] = {
    "max_connections": "300",
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
}
CURRENCIES = "points:0,usdt:2"
FUND_AMOUNT = 10_000_000  # points per user: no transfer of the run can drain a wallet
BATCH_SIZE = 1000

FIXED_RATE_SHARE = 0.7  # the fixed-rate scenario runs at this share of uniform's maximum
RSS_MAX_MB = 200
GOALS_TEXT = {
    "uniform_vs_pgbench": "uniform PG >= 1.0x pgbench TPS",
    "fixed_p99": f"fixed rate ({FIXED_RATE_SHARE:.0%} of uniform's max): p99 < 25 ms",
    "hot_vs_uniform": "hot >= 0.8x uniform",
    "batch_tps": "batch >= 25,000 transfers/s",
    "reads_vs_pgbench": "reads >= 1.5x pgbench TPS",
    "sqlite_vs_pg": "SQLite uniform >= 0.6x PG uniform",
    "rss": f"RSS per API process after the run < {RSS_MAX_MB} MB",
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# CPU accounting: who used the two cores during a scenario (from /proc, no extra tools).

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.extend(int(c) for c in text.split())
    return found


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime, stime, cutime, cstime are fields 14 to 17 of stat; fields[0] here is field 3.
    # cutime and cstime hold the children that exited and were waited for (e.g. the
    # PostgreSQL backends of pgbench's connections); live children are counted on their own.
    return sum(int(x) for x in fields[11:15]) / _CLK_TCK


def cpu_snapshot(roots: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each process tree (live processes), and by the load
    generators that this process started and waited for (wrk, pgbench: RUSAGE_CHILDREN)."""
    out: dict[str, float] = {}
    for group, root in roots.items():
        for pid in _tree(root):
            seconds = _cpu_seconds(pid)
            if seconds is not None:
                out[f"{group}:{pid}"] = seconds
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["client:0"] = usage.ru_utime + usage.ru_stime
    return out


def total_cpu() -> float:
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    busy = sum(int(x) for i, x in enumerate(parts) if i not in (3, 4))  # minus idle, iowait
    return busy / _CLK_TCK


def postmaster_pid(pg: PgServer) -> int:
    return int((pg.data / "postmaster.pid").read_text().split()[0])


class CpuMeter:
    """CPU used between start() and stop(): by our process trees, by the whole machine, and so
    by everything else (other work on the machine skews a benchmark on 2 cores)."""

    def __init__(self, roots: Mapping[str, int]) -> None:
        self.roots = dict(roots)
        self.seconds: dict[str, float] = {}
        self.busy_pct = 0.0
        self.others_pct = 0.0

    def start(self) -> None:
        self._procs = cpu_snapshot(self.roots)
        self._busy = total_cpu()
        self._t = time.monotonic()

    def stop(self) -> None:
        procs, busy, t = cpu_snapshot(self.roots), total_cpu(), time.monotonic()
        self.seconds = cpu_delta(self._procs, procs)
        capacity = (t - self._t) * (os.cpu_count() or 1)
        self.busy_pct = round(100 * (busy - self._busy) / capacity, 1)
        ours = sum(self.seconds.values())
        self.others_pct = round(max(0.0, 100 * (busy - self._busy - ours) / capacity), 1)


def machine_busy(seconds: float = 1.0) -> float:
    """Share of the machine's CPU in use over ``seconds``, in percent."""
    b0, t0 = total_cpu(), time.monotonic()
    time.sleep(seconds)
    return 100 * (total_cpu() - b0) / ((time.monotonic() - t0) * (os.cpu_count() or 1))


def wait_quiet(max_wait: float, threshold_pct: float = 15.0) -> tuple[float, float]:
    """Wait (at most ``max_wait`` s) until the machine is idle before a measurement, since
    other processes (a test suite...) would take CPU from it. Returns (waited, busy %)."""
    started = time.monotonic()
    busy = machine_busy()
    while busy > threshold_pct and time.monotonic() - started < max_wait:
        busy = machine_busy()
    waited = time.monotonic() - started - 1.0
    if busy > threshold_pct:
        log(f"  the machine is still {busy:.0f}% busy with other work after {waited:.0f} s; "
            "measuring anyway (see 'others' in the CPU table)")
    elif waited > 1:
        log(f"  waited {waited:.0f} s for other work on the machine to finish")
    return round(max(0.0, waited), 1), round(busy, 1)


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    # A process that exited in between is missing from ``after``, and its whole life's CPU
    # time is now in its parent's cutime/cstime: subtracting its ``before`` leaves its share.
    groups: dict[str, float] = {}
    for snapshot, sign in ((after, 1.0), (before, -1.0)):
        for key, value in snapshot.items():
            group = key.split(":", 1)[0]
            groups[group] = groups.get(group, 0.0) + sign * value
    return {k: round(v, 2) for k, v in sorted(groups.items())}


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class CheckResult:
    ok: bool
    exit_code: int
    seconds: float
    accounts: int = 0
    transactions: int = 0
    entries: int = 0
    problems: dict[str, Any] = field(default_factory=dict)
    output: str = ""


@dataclass
class Scenario:
    name: str
    database: str
    connections: int
    wrk: dict[str, Any]
    check: CheckResult | None = None
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    cpu_busy_pct: float = 0.0
    cpu_others_pct: float = 0.0
    quiet_wait_s: float = 0.0
    busy_before_pct: float = 0.0
    profiled: bool = False
    pg_counters: dict[str, int] = field(default_factory=dict)
    pg_statements: list[dict[str, Any]] = field(default_factory=list)
    pg_activity: list[dict[str, Any]] = field(default_factory=list)
    target_rate: float = 0.0  # fixed-rate scenario: requests/s asked for (0: as fast as possible)
    ledger: dict[str, float] = field(default_factory=dict)  # batches, jobs, commit_s

    @property
    def seconds(self) -> float:
        return float(self.wrk["duration_us"]) / 1e6

    @property
    def transfers(self) -> int:
        """Transfers posted: one per 2xx write, or the ``posted`` counts of batch calls."""
        if self.name == "batch":
            return int(self.wrk["posted"])
        return int(self.wrk["ok"])

    @property
    def per_second(self) -> float:
        """Transfers per second (requests per second for reads)."""
        return self.transfers / self.seconds if self.seconds else 0.0

    @property
    def requests_per_second(self) -> float:
        return int(self.wrk["requests"]) / self.seconds if self.seconds else 0.0

    def latency_ms(self, name: str) -> float:
        return float(self.wrk["latency_us"][name]) / 1000

    @property
    def errors(self) -> int:
        """Unexpected answers: every non-2xx except the insufficient_funds refusals."""
        w = self.wrk
        return int(w["in_use"] + w["rate_limited"] + w["client_errors"] + w["server_errors"]
                   + w["other_status"])

    @property
    def socket_errors(self) -> int:
        return int(sum(self.wrk["socket_errors"].values()))

    def as_dict(self, pgbench_tps: float | None) -> dict[str, Any]:
        return {
            "name": self.name,
            "database": self.database,
            "connections": self.connections,
            "seconds": round(self.seconds, 2),
            "requests": self.wrk["requests"],
            "requests_per_second": round(self.requests_per_second, 1),
            "transfers": self.transfers if self.name != "reads" else None,
            "per_second": round(self.per_second, 1),
            "unit": "requests/s" if self.name == "reads" else "transfers/s",
            "target_rate": self.target_rate or None,
            "x_pgbench": round(self.per_second / pgbench_tps, 3) if pgbench_tps else None,
            "latency_ms": {k: round(float(v) / 1000, 2) for k, v in
                           self.wrk["latency_us"].items()},
            "ok_2xx": self.wrk["ok"],
            "refused_insufficient_funds": self.wrk["refused"],
            "errors": self.errors,
            "errors_by_class": {k: self.wrk[k] for k in
                                ("in_use", "rate_limited", "client_errors", "server_errors",
                                 "other_status")},
            "socket_errors": self.wrk["socket_errors"],
            "batch_posted": self.wrk["posted"] if self.name == "batch" else None,
            "batch_rejected": self.wrk["rejected"] if self.name == "batch" else None,
            "error_sample": self.wrk.get("error_sample") or None,
            "cpu_seconds": self.cpu_seconds,
            "cpu_busy_pct": self.cpu_busy_pct,
            "cpu_others_pct": self.cpu_others_pct,
            "quiet_wait_s": self.quiet_wait_s,
            "busy_before_pct": self.busy_before_pct,
            "pg_counters": self.pg_counters,
            "pg_statements": self.pg_statements or None,
            "pg_activity": self.pg_activity or None,
            "ledger": self.ledger or None,
            "check": None if self.check is None else {
                "ok": self.check.ok, "exit_code": self.check.exit_code,
                "seconds": self.check.seconds, "accounts": self.check.accounts,
                "transactions": self.check.transactions, "entries": self.check.entries,
                "problems": self.check.problems,
            },
        }


@dataclass
class PgbenchResult:
    tps: float
    clients: int
    threads: int
    scale: int
    seconds: float
    transactions: int
    failed: int
    latency_ms: dict[str, float]
    cpu_seconds: dict[str, float]
    cpu_busy_pct: float
    cpu_others_pct: float
    quiet_wait_s: float
    busy_before_pct: float
    output: str


# --------------------------------------------------------------------------------------------
# Processes


def run(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 600,
        cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), env=dict(env) if env is not None else None, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... exited {proc.returncode}:\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def pg_server_class() -> type[PgServer]:
    sys.path.insert(0, str(ROOT))
    from tests.pgserver import PgServer

    return PgServer


class CoinpurseServer:
    """``coinpurse serve`` in its own process group, stopped by that group's id."""

    def __init__(self, env: Mapping[str, str], workers: int, workdir: Path, name: str) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.pgserver import free_port

        self.env = dict(env)
        self.workers = workers
        self.port = free_port()
        self.metrics_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [COINPURSE, "serve", "--workers", str(self.workers), "--port", str(self.port),
             "--metrics-port", str(self.metrics_port), "--no-migrate"],
            env=self.env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log_file.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"coinpurse serve exited:\n{self.log_tail()}")
            with (contextlib.suppress(OSError),
                  urllib.request.urlopen(self.base + "/healthz", timeout=2) as r):
                if r.status == 200 and self._workers_up():
                    return
            time.sleep(0.2)
        raise RuntimeError(f"coinpurse serve did not answer in 60 s:\n{self.log_tail()}")

    def _workers_up(self) -> bool:
        """With several workers, wait until each process exists (healthz hits one of them;
        the warm-up load gives the others time to finish starting)."""
        if self.workers == 1:
            return True
        return len(self.worker_pids()) >= self.workers

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        pids: list[int] = []
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        for pid in children.split():
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_text()
                # spawn's resource tracker is not a worker
                if "multiprocessing" in cmdline and "resource_tracker" not in cmdline:
                    pids.append(int(pid))
        return pids

    def rss_mb(self) -> list[float]:
        """Resident memory of each API process (the workers, or the server itself)."""
        sizes: list[float] = []
        for pid in self.worker_pids() or [self.pid]:
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                kb = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
                if kb:
                    sizes.append(round(int(kb.group(1)) / 1024, 1))
        return sizes

    def ledger_counters(self) -> dict[str, float]:
        """The ledger's batch histograms, all workers added up (Prometheus text)."""
        wanted = {"coinpurse_ledger_batch_jobs_count": "batches",
                  "coinpurse_ledger_batch_jobs_sum": "jobs",
                  "coinpurse_ledger_commit_seconds_sum": "commit_s"}
        found = dict.fromkeys(wanted.values(), 0.0)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as r:
            for line in r.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name in wanted:
                    found[wanted[name]] += float(value)
        return found

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_findings(self) -> dict[str, int]:
        """How many warnings, errors and tracebacks the server logged."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return {
            "warnings": len(re.findall(r"\bWARNING\b", text)),
            "errors": len(re.findall(r"\bERROR\b", text)),
            "tracebacks": text.count("Traceback (most recent call last)"),
        }

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group is ours, and its id is our pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def http_json(method: str, url: str, body: Any, headers: Mapping[str, str],
              timeout: float = 120) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


# --------------------------------------------------------------------------------------------
# Coinpurse set-up


def coinpurse_env(database_url: str, jwt_secret: str, extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINPURSE_")}
    env.update({
        "COINPURSE_DATABASE_URL": database_url,
        "COINPURSE_JWT_SECRET": jwt_secret,
        "COINPURSE_CURRENCIES": CURRENCIES,
        "COINPURSE_LOG_LEVEL": "warning",
        # Every request comes from 127.0.0.1 and a few users: the per-address and per-user
        # limits (on by default) would measure the limiter, not the ledger.
        "COINPURSE_RATE_LIMIT_IP": "off",
        "COINPURSE_RATE_LIMIT_USER": "off",
        "COINPURSE_RATE_LIMIT_SERVICE": "off",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    env.update(extra)
    return env


def prepare_database(env: Mapping[str, str]) -> str:
    """Migrate and create the benchmark's service key; return the key."""
    run([COINPURSE, "migrate"], env=env, timeout=120)
    out = run([COINPURSE, "keys", "create", "--service", "bench", "--scopes", "*", "--json"],
              env=env, timeout=60).stdout
    key: str = json.loads(out)["key"]
    return key


def make_tokens(env: Mapping[str, str], users: Sequence[int], path: Path) -> None:
    """User tokens from ``coinpurse token --user ID`` (a few processes at a time)."""

    def one(user: int) -> str:
        token = run([COINPURSE, "token", "--user", str(user), "--ttl", "7200"], env=env,
                    timeout=60).stdout.strip()
        return f"{user} {token}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        lines = list(pool.map(one, users))
    path.write_text("\n".join(lines) + "\n")


def fund_users(base: str, key: str, users: int, nonce: str) -> float:
    """Credit every user from ``world`` with the batch API, 1,000 transfers per call."""
    started = time.monotonic()
    for start in range(1, users + 1, BATCH_SIZE):
        transfers = [
            {"postings": [{"source": "world", "destination": f"user:{n}",
                           "amount": FUND_AMOUNT, "currency": "points"}],
             "description": "fund", "reference_id": f"fund-{n}"}
            for n in range(start, min(start + BATCH_SIZE, users + 1))
        ]
        status, body = http_json(
            "POST", base + "/internal/v1/transfers/batch", {"transfers": transfers},
            {"X-API-Key": key, "Idempotency-Key": f"fund-{nonce}-{start}"},
        )
        if status != 200 or body.get("rejected"):
            raise RuntimeError(f"funding failed: {status} {str(body)[:500]}")
    return time.monotonic() - started


def coinpurse_check(env: Mapping[str, str]) -> CheckResult:
    started = time.monotonic()
    proc = run([COINPURSE, "check", "--json"], env=env, timeout=600, check=False)
    seconds = round(time.monotonic() - started, 2)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return CheckResult(ok=False, exit_code=proc.returncode, seconds=seconds,
                           output=(proc.stdout + proc.stderr)[-2000:])
    return CheckResult(
        ok=proc.returncode == 0 and bool(report.get("ok")), exit_code=proc.returncode,
        seconds=seconds, accounts=int(report.get("accounts", 0)),
        transactions=int(report.get("transactions", 0)), entries=int(report.get("entries", 0)),
        problems=report.get("problems") or {},
    )


# --------------------------------------------------------------------------------------------
# Load


def run_wrk(base: str, scenario: str, key: str, users: int, connections: int, duration: float,
            tokens: Path | None = None, rate: float = 0.0) -> dict[str, Any]:
    """wrk with bench/wrk/coinpurse.lua; ``rate`` (requests/s in all) paces a fixed-rate run."""
    nonce = f"{scenario[:2]}{secrets.token_hex(6)}"
    threads = min(2, connections)
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
        "--timeout", "10s", "-s", str(LUA), base, "--",
        scenario, key, str(users), nonce, str(tokens or "-"), str(BATCH_SIZE),
        f"{rate / threads:.3f}",
    ]
    proc = run(cmd, timeout=duration + 120, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return result
    raise RuntimeError(f"wrk gave no result (exit {proc.returncode}):\n"
                       f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def measure(base: str, name: str, database: str, key: str, users: int, connections: int,
            duration: float, roots: Mapping[str, int], tokens: Path | None = None,
            during: Sequence[Iterator[None]] = (), quiet_wait: float = 60,
            rate: float = 0.0) -> Scenario:
    """One scenario; ``fixed`` is the uniform mix at ``rate`` requests/s."""
    log(f"{name} ({database}): {connections} connections, {duration:g} s"
        + (f", at {rate:,.0f} requests/s" if rate else ""))
    waited, busy_before = wait_quiet(quiet_wait)
    meter = CpuMeter(roots)
    meter.start()
    for probe in during:
        next(probe)  # start a profiler, a sampler
    result = run_wrk(base, "uniform" if name == "fixed" else name, key, users, connections,
                     duration, tokens, rate)
    for probe in during:
        with contextlib.suppress(StopIteration):
            next(probe)
    meter.stop()
    scenario = Scenario(name, database, connections, result, cpu_seconds=meter.seconds,
                        cpu_busy_pct=meter.busy_pct, cpu_others_pct=meter.others_pct,
                        quiet_wait_s=waited, busy_before_pct=busy_before, target_rate=rate)
    log(f"  {scenario.per_second:,.0f} {'req' if name == 'reads' else 'transfers'}/s, "
        f"p50 {scenario.latency_ms('p50'):.1f} ms, p99 {scenario.latency_ms('p99'):.1f} ms, "
        f"p99.9 {scenario.latency_ms('p999'):.1f} ms, "
        f"refused {result['refused']}, errors {scenario.errors}, "
        f"socket errors {scenario.socket_errors}, CPU {scenario.cpu_seconds}")
    if result.get("error_sample"):
        log(f"  first unexpected answer: {result['error_sample'][:200]}")
    return scenario


def ledger_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before[k], 3) for k in after}


def warm_up(base: str, key: str, users: int, seconds: float) -> None:
    if seconds > 0:
        run_wrk(base, "uniform", key, users, 16, seconds)


def pgbench(pg: PgServer, clients: int, threads: int, scale: int, duration: float,
            workdir: Path, quiet_wait: float) -> PgbenchResult:
    bindir = pg.bindir
    conn = ["-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres"]
    pg.createdb("pgbench")
    log(f"pgbench -i -s {scale}")
    run([str(bindir / "pgbench"), "-i", "-s", str(scale), "-q", *conn, "pgbench"], timeout=600)
    psql(pg, "pgbench", "CHECKPOINT")
    log(f"pgbench -c {clients} -j {threads} -T {duration:g} (TPC-B-like)")
    logdir = workdir / "pgbench-log"
    logdir.mkdir()
    waited, busy_before = wait_quiet(quiet_wait)
    meter = CpuMeter({"postgres": postmaster_pid(pg)})
    meter.start()
    proc = run([str(bindir / "pgbench"), "-c", str(clients), "-j", str(threads), "-T",
                str(max(1, round(duration))), "-l", "--log-prefix", str(logdir / "tx"),
                *conn, "pgbench"], timeout=duration + 300)
    meter.stop()
    out = proc.stdout
    tps = float(_find(r"tps = ([\d.]+) \(without initial connection time\)", out))
    transactions = int(_find(r"number of transactions actually processed: (\d+)", out))
    failed = int(_find(r"number of failed transactions: (\d+)", out, "0"))
    latencies: list[int] = []
    for f in logdir.iterdir():
        with f.open() as lines:
            latencies.extend(int(line.split()[2]) for line in lines if line.strip())
    latency = _percentiles(latencies)
    result = PgbenchResult(
        tps=tps, clients=clients, threads=threads, scale=scale, seconds=duration,
        transactions=transactions, failed=failed, latency_ms=latency,
        cpu_seconds=meter.seconds, cpu_busy_pct=meter.busy_pct,
        cpu_others_pct=meter.others_pct, quiet_wait_s=waited, busy_before_pct=busy_before,
        output=out,
    )
    log(f"  pgbench: {tps:,.0f} TPS, p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms, "
        f"CPU {result.cpu_seconds}")
    return result


def _find(pattern: str, text: str, default: str | None = None) -> str:
    m = re.search(pattern, text)
    if m:
        return m.group(1)
    if default is not None:
        return default
    raise RuntimeError(f"pgbench output lacks {pattern!r}:\n{text[-2000:]}")


def _percentiles(values_us: list[int]) -> dict[str, float]:
    if not values_us:
        return {k: 0.0 for k in ("mean", "p50", "p90", "p95", "p99", "p999", "max")}
    values = sorted(values_us)

    def pct(p: float) -> float:
        return values[min(len(values) - 1, int(p / 100 * len(values)))] / 1000

    return {"mean": round(statistics.fmean(values) / 1000, 2), "p50": pct(50), "p90": pct(90),
            "p95": pct(95), "p99": pct(99), "p999": pct(99.9), "max": values[-1] / 1000}


def psql(pg: PgServer, db: str, sql: str) -> list[list[str]]:
    """Run ``sql``; return its rows as lists of strings (tab-separated, unaligned)."""
    out = run([str(pg.bindir / "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U",
               "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qAt", "-F", "\t", "-c", sql],
              timeout=600).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def pg_counters(pg: PgServer, db: str) -> dict[str, int]:
    """Sessions opened and transactions ended so far in ``db`` (pg_stat_database)."""
    (row,) = psql(pg, db, "SELECT sessions, xact_commit, xact_rollback FROM pg_stat_database "
                          f"WHERE datname = '{db}'")
    return {"sessions": int(row[0]), "commits": int(row[1]), "rollbacks": int(row[2])}


STATEMENTS_SQL = r"""
SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3), rows,
       left(regexp_replace(query, '\s+', ' ', 'g'), 160)
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{db}')
ORDER BY total_exec_time DESC LIMIT {limit}
"""


class ActivitySampler:
    """Samples pg_stat_activity of Coinpurse's connections every ``interval`` s in a thread:
    what its connections were doing (running, waiting on a lock, or idle in a transaction,
    i.e. waiting for the Python process to send the next statement)."""

    QUERY = (
        "SELECT state, COALESCE(wait_event_type || ':' || wait_event, '') AS wait, "
        "split_part(regexp_replace(query, '\\s+', ' ', 'g'), ' ', 1) || ' ' || "
        "COALESCE(substring(query from '(?i)(?:from|into|update) +([a-z_]+)'), '') AS what "
        "FROM pg_stat_activity WHERE application_name = 'coinpurse' "
        "AND pid <> pg_backend_pid()"
    )

    def __init__(self, dsn: str, interval: float = 0.05) -> None:
        self.dsn = dsn
        self.interval = interval
        self.counts: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.error: str | None = None

    def __iter__(self) -> Iterator[None]:
        self._thread.start()
        yield
        self._stop.set()
        self._thread.join(timeout=30)

    def _main(self) -> None:
        try:
            asyncio.run(self._loop())
        except Exception as exc:  # the benchmark goes on without it
            self.error = repr(exc)

    async def _loop(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(self.QUERY)
                self.samples += 1
                for r in rows:
                    state = r["state"] or "?"
                    label = f"{state} | {r['wait'] or '-'} | {r['what'].strip()}"
                    if state == "idle":
                        label = "idle (in the pool)"
                    self.counts[label] = self.counts.get(label, 0) + 1
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    def summary(self, top: int = 15) -> list[dict[str, Any]]:
        """Average number of connections in each (state, wait, statement) over the samples."""
        if not self.samples:
            return []
        rows = sorted(self.counts.items(), key=lambda kv: -kv[1])[:top]
        return [{"what": k, "connections": round(v / self.samples, 2)} for k, v in rows]


def top_statements(pg: PgServer, db: str, limit: int = 12) -> list[dict[str, Any]]:
    return [
        {"calls": int(r[0]), "total_ms": float(r[1]), "mean_ms": float(r[2]), "rows": int(r[3]),
         "query": r[4]}
        for r in psql(pg, db, STATEMENTS_SQL.format(db=db, limit=limit))
    ]


# --------------------------------------------------------------------------------------------
# Profiling (optional): py-spy on the server's workers during the PG uniform scenario


def profiler(server: CoinpurseServer, duration: float, out: Path) -> Iterator[None]:
    """A generator for measure(): starts py-spy on every worker, then waits for it."""
    pyspy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
    if pyspy is None:
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    procs: list[tuple[int, subprocess.Popen[bytes], Path]] = []
    for pid in server.worker_pids():
        raw = out.with_name(f"{out.stem}-{pid}.txt")
        procs.append((pid, subprocess.Popen(
            [pyspy, "record", "--pid", str(pid), "--format", "raw", "--nolineno", "--gil",
             "--rate", "100", "--duration", str(max(1, round(duration - 1))), "-o", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), raw))
    yield
    for pid, proc, _raw in procs:
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0:
            log(f"py-spy on {pid} exited {proc.returncode}: {err.decode()[-500:]}")


def summarize_profile(raw_files: Sequence[Path], top: int = 25) -> str:
    """Where the workers' Python time goes, from py-spy's collapsed stacks: own time per
    function and per package, and total time (on the stack) per Coinpurse function and per
    notable library function, leaving out the frames that every request passes through."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for raw in raw_files:
        if not raw.exists():
            continue
        for line in raw.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            samples += count
            frames = [_short_frame(f) for f in stack.split(";")[1:]]  # [0] is the process
            if not frames:
                continue
            own[frames[-1]] = own.get(frames[-1], 0) + count
            for f in set(frames):
                total[f] = total.get(f, 0) + count
    if not samples:
        return "no samples\n"

    def pct(count: int) -> str:
        return f"{100 * count / samples:5.1f}%"

    lines = [f"{samples} samples of the thread holding the GIL (py-spy --gil), all workers: "
             "Python CPU time. Waiting (the event loop idle, a query in flight) is not "
             "sampled; C code such as asyncpg's protocol counts for the Python function that "
             "called it.", "", "Own time, by function:"]
    lines += [f"  {pct(c)}  {n}" for n, c in sorted(own.items(), key=lambda kv: -kv[1])[:top]]
    packages: dict[str, int] = {}
    for name, count in own.items():
        packages[_package(name)] = packages.get(_package(name), 0) + count
    lines += ["", "Own time, by package:"]
    lines += [f"  {pct(c)}  {n}" for n, c in
              sorted(packages.items(), key=lambda kv: -kv[1])[:15]]
    lines += ["", "Total time (on the stack), Coinpurse functions:"]
    ours = [(n, c) for n, c in total.items() if "(coinpurse/" in n]
    lines += [f"  {pct(c)}  {n}" for n, c in sorted(ours, key=lambda kv: -kv[1])[:top]]
    # Frames on (nearly) every request's stack say nothing; nor do the process's own.
    process = max(count for count in total.values()) * 0.4
    request = max((c for n, c in total.items() if n.startswith("RequestResponseCycle.run_asgi")),
                  default=samples)
    framework = ("(fastapi/", "(starlette/", "(uvicorn/")
    lines += ["", "Total time (on the stack), other functions (leaving out the server and "
              "framework frames that every request passes through):"]
    others = [(n, c) for n, c in total.items()
              if c < process and "(coinpurse/" not in n
              and not (c >= 0.9 * request and any(f in n for f in framework))]
    lines += [f"  {pct(c)}  {n}" for n, c in sorted(others, key=lambda kv: -kv[1])[:top]]
    return "\n".join(lines) + "\n"


def _short_frame(frame: str) -> str:
    """``func (/long/path/site-packages/pkg/mod.py)`` -> ``func (pkg/mod.py)``."""
    m = re.match(r"^(.*) \((.*)\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("site-packages/", "/src/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "lib/python3.":
                path = "stdlib/" + path.split("/", 1)[-1]
            break
    return f"{func} ({path})"


def _package(frame: str) -> str:
    m = re.match(r"^.* \((.*)\)$", frame)
    if not m:
        return frame
    path = m.group(1)
    if path.startswith("stdlib/"):
        parts = path.split("/")
        return "stdlib/" + (parts[1] if len(parts) > 2 else parts[-1].removesuffix(".py"))
    return path.split("/", 1)[0].removesuffix(".py")


# --------------------------------------------------------------------------------------------
# Report


def goals(scenarios: Mapping[str, Scenario], pgbench_tps: float,
          rss_mb: Mapping[str, list[float]] | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    uni = scenarios.get("uniform-pg")
    if uni is not None:
        ratio = uni.per_second / pgbench_tps if pgbench_tps else 0.0
        found.append({"id": "uniform_vs_pgbench", "goal": GOALS_TEXT["uniform_vs_pgbench"],
                      "measured": f"{ratio:.2f}x ({uni.per_second:,.0f} vs "
                                  f"{pgbench_tps:,.0f} TPS), p99 {uni.latency_ms('p99'):.1f} ms "
                                  "at saturation",
                      "pass": ratio >= 1.0})
    fixed = scenarios.get("fixed-pg")
    if fixed is not None:
        p99 = fixed.latency_ms("p99")
        found.append({"id": "fixed_p99", "goal": GOALS_TEXT["fixed_p99"],
                      "measured": f"p50 {fixed.latency_ms('p50'):.1f} ms, p99 {p99:.1f} ms, "
                                  f"p99.9 {fixed.latency_ms('p999'):.1f} ms at "
                                  f"{fixed.requests_per_second:,.0f} of "
                                  f"{fixed.target_rate:,.0f} requests/s",
                      "pass": p99 < 25 and fixed.requests_per_second >= 0.95 * fixed.target_rate})
    hot = scenarios.get("hot-pg")
    if hot is not None and uni is not None and uni.per_second:
        ratio = hot.per_second / uni.per_second
        found.append({"id": "hot_vs_uniform", "goal": GOALS_TEXT["hot_vs_uniform"],
                      "measured": f"{ratio:.2f}x ({hot.per_second:,.0f} vs "
                                  f"{uni.per_second:,.0f})",
                      "pass": ratio >= 0.8})
    batch = scenarios.get("batch-pg")
    if batch is not None:
        found.append({"id": "batch_tps", "goal": GOALS_TEXT["batch_tps"],
                      "measured": f"{batch.per_second:,.0f} transfers/s",
                      "pass": batch.per_second >= 25_000})
    reads = scenarios.get("reads-pg")
    if reads is not None:
        ratio = reads.per_second / pgbench_tps if pgbench_tps else 0.0
        found.append({"id": "reads_vs_pgbench", "goal": GOALS_TEXT["reads_vs_pgbench"],
                      "measured": f"{ratio:.2f}x ({reads.per_second:,.0f} req/s vs "
                                  f"{pgbench_tps:,.0f} TPS)",
                      "pass": ratio >= 1.5})
    lite = scenarios.get("uniform-sqlite")
    if lite is not None and uni is not None and uni.per_second:
        ratio = lite.per_second / uni.per_second
        found.append({"id": "sqlite_vs_pg", "goal": GOALS_TEXT["sqlite_vs_pg"],
                      "measured": f"{ratio:.2f}x ({lite.per_second:,.0f} vs "
                                  f"{uni.per_second:,.0f})",
                      "pass": ratio >= 0.6})
    sizes = [mb for found_mb in (rss_mb or {}).values() for mb in found_mb]
    if sizes:
        found.append({"id": "rss", "goal": GOALS_TEXT["rss"],
                      "measured": "; ".join(f"{db}: " + ", ".join(f"{mb:.0f} MB" for mb in v)
                                            for db, v in (rss_mb or {}).items()),
                      "pass": max(sizes) < RSS_MAX_MB})
    return found


def markdown(report: dict[str, Any], scenarios: Mapping[str, Scenario]) -> str:
    pgb = report["pgbench"]
    m = report["machine"]
    lines = [
        f"# Coinpurse benchmark — {report['started_at']}",
        "",
        f"Commit `{report['commit']}`{' (with local changes)' if report['dirty'] else ''}; "
        f"{m['cores']} cores ({m['cpu']}), PostgreSQL {m['postgres']}, Python {m['python']}, "
        f"{m['wrk']}. {report['duration_s']:g} s per scenario"
        f"{' (--quick)' if report['quick'] else ''}. PostgreSQL: fsync, full_page_writes and "
        "synchronous_commit on; " + ", ".join(f"{k}={v}" for k, v in
                                              report["postgres_settings"].items()) + ". "
        f"Coinpurse on PostgreSQL: `coinpurse serve --workers {report.get('workers', 2)}`"
        + "".join(f", {k}={v}" for k, v in report["coinpurse_env"].items()
                  if k != "COINPURSE_CURRENCIES") + ".",
        "",
        "| Scenario | DB | Conns | Transfers/s | x pgbench | p50 ms | p95 ms | p99 ms "
        "| p99.9 ms | 2xx | Refused (422 insufficient_funds) | Errors (other non-2xx) "
        "| Socket errors | `coinpurse check` |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | --- |",
        f"| pgbench TPC-B-like, scale {pgb['scale']} (reference) | PostgreSQL "
        f"| {pgb['clients']} | {pgb['tps']:,.0f} TPS | 1.00 | {pgb['latency_ms']['p50']:.1f} "
        f"| {pgb['latency_ms']['p95']:.1f} | {pgb['latency_ms']['p99']:.1f} "
        f"| {pgb['latency_ms'].get('p999', 0):.1f} "
        f"| {pgb['transactions']:,} | — | {pgb['failed']} failed | — | — |",
    ]
    titles = {
        "uniform": "uniform: credits, debits, 2-posting transfers among "
                   f"{report['users']:,} users",
        "hot": "hot: every transfer pays user:streamer",
        "batch": f"batch API, {BATCH_SIZE:,} transfers per call",
        "reads": "reads: balances + history first pages",
        "fixed": f"fixed rate: the uniform mix at {FIXED_RATE_SHARE:.0%} of its maximum",
    }
    for s in scenarios.values():
        d = s.as_dict(pgb["tps"])
        check = "—"
        if s.check is not None:
            check = (f"OK ({s.check.transactions:,} tx)" if s.check.ok
                     else f"**FAIL** (exit {s.check.exit_code})")
        rate = f"{d['per_second']:,.0f}"
        if s.name == "reads":
            rate += " req/s"
        elif s.name == "batch":
            rate += f" ({d['requests_per_second']:.1f} calls/s)"
        elif s.name == "fixed":
            rate += f" (asked {s.target_rate:,.0f} req/s)"
        sock = s.socket_errors
        sock_text = str(sock) if not sock else (
            f"{sock} ({', '.join(f'{k} {v}' for k, v in d['socket_errors'].items() if v)})")
        lines.append(
            f"| {titles[s.name]} | {'PostgreSQL' if s.database == 'postgresql' else 'SQLite'} "
            f"| {s.connections} | {rate} | {d['x_pgbench']:.2f} "
            f"| {s.latency_ms('p50'):.1f} | {s.latency_ms('p95'):.1f} "
            f"| {s.latency_ms('p99'):.1f} | {s.latency_ms('p999'):.1f} "
            f"| {s.wrk['ok']:,} | {s.wrk['refused']:,} "
            f"| {s.errors:,} | {sock_text} | {check} |"
        )
    lines += ["", "## Goals", "", "| Goal | Measured | Result |", "| --- | --- | --- |"]
    for g in report["goals"]:
        lines.append(f"| {g['goal']} | {g['measured']} | {'PASS' if g['pass'] else 'MISS'} |")
    lines += ["", "## CPU seconds used during each scenario (from /proc)", "",
              f"CPU seconds out of {m['cores']} cores x {report['duration_s']:g} s. 'machine "
              "busy' is the whole machine's use; 'others' the part of it used by processes "
              "that are not the benchmark's (anything above a few % skews the figures).", "",
              "| Scenario | machine busy | others | coinpurse | postgres | load generator "
              "| CPU ms per transfer: coinpurse + postgres | new PostgreSQL sessions "
              "| PostgreSQL commits / rollbacks |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    pcpu = pgb["cpu_seconds"]
    per_tx = 1000 * pcpu.get("postgres", 0) / max(1, pgb["transactions"])
    lines.append(f"| pgbench | {pgb['cpu_busy_pct']:.0f}% | {pgb['cpu_others_pct']:.0f}% | — "
                 f"| {pcpu.get('postgres', 0):.1f} | {pcpu.get('client', 0):.1f} (pgbench) "
                 f"| — + {per_tx:.2f} | {pgb['clients']} | — |")
    for s in scenarios.values():
        c = s.cpu_seconds
        pc = s.pg_counters
        sessions = f"{pc['sessions']:,}" if pc else "—"
        xacts = f"{pc['commits']:,} / {pc['rollbacks']:,}" if pc else "—"
        count = max(1, s.transfers if s.name != "reads" else int(s.wrk["requests"]))
        per = (f"{1000 * c.get('coinpurse', 0) / count:.2f} + "
               f"{1000 * c.get('postgres', 0) / count:.2f}"
               + (" (per request)" if s.name == "reads" else ""))
        lines.append(f"| {s.name} {s.database} | {s.cpu_busy_pct:.0f}% "
                     f"| {s.cpu_others_pct:.0f}% | {c.get('coinpurse', 0):.1f} "
                     f"| {c.get('postgres', 0):.1f} "
                     f"| {c.get('client', 0):.1f} (wrk{' + py-spy' if s.profiled else ''}) "
                     f"| {per} | {sessions} | {xacts} |")
    ledgers = [s for s in scenarios.values() if s.ledger.get("batches")]
    if ledgers:
        lines += ["", "## The ledger's batches (group commit; from the server's metrics)", "",
                  "A batch is one database transaction of the jobs that were waiting; its time "
                  "runs from its start to its commit (round trips, the committer's Python and "
                  "the event loop's other work in between).", "",
                  "| Scenario | batches | jobs per batch | ms per batch | batches per second |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for s in ledgers:
            lg = s.ledger
            lines.append(f"| {s.name} {s.database} | {lg['batches']:,.0f} "
                         f"| {lg['jobs'] / lg['batches']:.1f} "
                         f"| {1000 * lg['commit_s'] / lg['batches']:.1f} "
                         f"| {lg['batches'] / max(s.seconds, 1e-9):,.0f} |")
    for s in scenarios.values():
        if s.pg_activity:
            lines += ["", f"### What Coinpurse's PostgreSQL connections were doing during "
                      f"{s.name} (pg_stat_activity, sampled every 50 ms)", "",
                      "| state \\| wait \\| statement | connections (average) |",
                      "| --- | ---: |"]
            for a in s.pg_activity:
                lines.append(f"| {a['what'].replace('|', '/')} | {a['connections']:.2f} |")
        if s.pg_statements:
            lines += ["", f"### Top PostgreSQL statements during {s.name} "
                      "(pg_stat_statements)", "", "| calls | total ms | mean ms | rows | query |",
                      "| ---: | ---: | ---: | ---: | --- |"]
            for st in s.pg_statements:
                query = st["query"].replace("|", "\\|")
                lines.append(f"| {st['calls']:,} | {st['total_ms']:,.0f} | {st['mean_ms']:.3f} "
                             f"| {st['rows']:,} | `{query}` |")
    problems = [s for s in scenarios.values() if s.check is not None and not s.check.ok]
    samples = [s for s in scenarios.values() if s.wrk.get("error_sample")]
    if problems or samples or any(report["server_logs"][k]["tracebacks"]
                                  for k in report["server_logs"]):
        lines += ["", "## Problems", ""]
        for s in problems:
            assert s.check is not None
            lines.append(f"- `coinpurse check` after {s.name} ({s.database}): exit "
                         f"{s.check.exit_code}, {json.dumps(s.check.problems)[:500]}")
        for s in samples:
            lines.append(f"- first unexpected answer in {s.name} ({s.database}): "
                         f"`{s.wrk['error_sample'][:300]}`")
        for name, found in report["server_logs"].items():
            if any(found.values()):
                lines.append(f"- server log ({name}): {found}")
    lines += ["", "Transfers/s counts posted transfers (2xx answers; for the batch API the "
              "`posted` count of each call). p50/p95/p99 are per request (one batch call is "
              "one request). See bench/README.md.", ""]
    return "\n".join(lines)


def git_commit() -> tuple[str, bool]:
    try:
        head = run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, timeout=10).stdout.strip()
        dirty = bool(run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT,
                         timeout=10).stdout.strip())
    except (RuntimeError, OSError):
        return "unknown", False
    return head, dirty


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pg_version = "?"
    with contextlib.suppress(Exception):
        pg_version = run([str(pg_server_class_bindir() / "postgres"), "--version"],
                         timeout=10).stdout.split()[-3]
    wrk_version = "wrk"
    with contextlib.suppress(Exception):
        wrk_version = run(["wrk", "-v"], timeout=10, check=False).stdout.split(" [")[0]
    return {"cores": os.cpu_count(), "cpu": cpu, "postgres": pg_version,
            "python": platform.python_version(), "wrk": wrk_version}


def pg_server_class_bindir() -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.pgserver import find_bindir

    return find_bindir()


def write_results(report: dict[str, Any], md: str, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = report["started_at"].replace(":", "").replace("-", "")[:15]
    suffix = ("-quick" if report["quick"] else "") + ("-profile" if report["profiled"] else "")
    paths = []
    for name in (f"latest{'' if report['as_latest'] else suffix}", f"{stamp}{suffix}"):
        for ext, content in (("md", md), ("json", json.dumps(report, indent=2) + "\n")):
            path = out_dir / f"{name}.{ext}"
            tmp = path.with_suffix(f".{ext}.tmp")
            tmp.write_text(content)
            tmp.replace(path)
            paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", type=float, default=20, help="seconds per scenario")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 5 s per scenario, 1 s warm-up; writes latest-quick.*")
    p.add_argument("--warmup", type=float, default=3, help="seconds of unmeasured load first")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--batch-connections", type=int, default=4)
    p.add_argument("--workers", type=int, default=2,
                   help="API processes of the PostgreSQL server (coinpurse serve --workers)")
    p.add_argument("--tokens", type=int, default=100, help="users with a token for reads")
    p.add_argument("--pgbench-clients", type=int, default=32)
    p.add_argument("--pgbench-threads", type=int, default=2)
    p.add_argument("--pgbench-scale", type=int, default=10)
    p.add_argument("--scenarios", default="uniform,hot,batch,reads,sqlite",
                   help="comma-separated subset of uniform,hot,batch,reads,sqlite")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the Coinpurse servers, e.g. "
                        "COINPURSE_COMMITTERS=4 (repeatable)")
    p.add_argument("--profile", nargs="?", const="uniform", default="", metavar="SCENARIOS",
                   help="py-spy the workers during these PostgreSQL scenarios (comma-separated; "
                        "default uniform); needs py-spy in .venv (bench/run installs it)")
    p.add_argument("--no-fixed", action="store_true",
                   help="skip the fixed-rate latency scenario (run after uniform, at "
                        f"{FIXED_RATE_SHARE:.0%} of uniform's maximum)")
    p.add_argument("--pg-stats", action="store_true",
                   help="load pg_stat_statements (for the whole run, pgbench included); "
                        "report each PostgreSQL scenario's top statements and what "
                        "Coinpurse's connections were doing (pg_stat_activity samples)")
    p.add_argument("--quiet-wait", type=float, default=180,
                   help="before each measurement, wait up to this many seconds for other work "
                        "on the machine to finish")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, databases)")
    p.add_argument("--as-latest", action="store_true",
                   help="write a --quick or --profile run to latest.* (not latest-quick.* or "
                        "latest-profile.*)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 5.0
        args.warmup = 1.0
        args.tokens = min(args.tokens, 32)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    unknown = wanted - {"uniform", "hot", "batch", "reads", "sqlite"}
    if unknown:
        print(f"unknown scenarios: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install {tool} (bench/run does)", file=sys.stderr)
            return 2
    extra_env = dict(e.split("=", 1) for e in args.env)
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="coinpurse-bench-"))
    if os.geteuid() == 0:
        os.chmod(workdir, 0o755)
    jwt_secret = secrets.token_urlsafe(32)
    scenarios: dict[str, Scenario] = {}
    server_logs: dict[str, dict[str, int]] = {}
    profiles: dict[str, str] = {}
    profile_for = {x.strip() for x in args.profile.split(",") if x.strip()}
    rss: dict[str, list[float]] = {}
    log(f"work folder {workdir}; {args.duration:g} s per scenario")

    tokens_path = workdir / "tokens.txt"
    if "reads" in wanted:
        log(f"{args.tokens} user tokens from `coinpurse token`")
        make_tokens(coinpurse_env("sqlite:///unused.db", jwt_secret, extra_env),
                    list(range(1, min(args.tokens, args.users) + 1)), tokens_path)

    pg_settings = dict(PG_SETTINGS)
    if args.pg_stats:
        pg_settings["shared_preload_libraries"] = "pg_stat_statements"
    pg = pg_server_class()(durable=True, settings=pg_settings)
    try:
        log(f"PostgreSQL on port {pg.port} ({pg.root})")
        pg.start()
        reference = pgbench(pg, args.pgbench_clients, args.pgbench_threads,
                            args.pgbench_scale, args.duration, workdir, args.quiet_wait)

        if wanted & {"uniform", "hot", "batch", "reads"}:
            url = pg.createdb("coinpurse")
            env = coinpurse_env(url, jwt_secret, extra_env)
            key = prepare_database(env)
            server = CoinpurseServer(env, args.workers, workdir, "pg")
            server.start()
            try:
                log(f"coinpurse serve --workers {args.workers} on {server.base}; funding "
                    f"{args.users:,} users")
                took = fund_users(server.base, key, args.users, secrets.token_hex(4))
                log(f"  funded in {took:.1f} s")
                psql(pg, "coinpurse", "VACUUM ANALYZE")
                if args.pg_stats:
                    psql(pg, "coinpurse", "CREATE EXTENSION pg_stat_statements")
                warm_up(server.base, key, args.users, args.warmup)
                for name in ("uniform", "fixed", "hot", "batch", "reads"):
                    if name not in wanted and not (name == "fixed" and "uniform" in wanted
                                                   and not args.no_fixed):
                        continue
                    rate = 0.0
                    if name == "fixed":  # the uniform mix below saturation: latency
                        rate = round(FIXED_RATE_SHARE * scenarios["uniform-pg"].per_second, 1)
                        if rate < 1:
                            continue
                    psql(pg, "coinpurse", "CHECKPOINT")
                    if args.pg_stats:
                        psql(pg, "coinpurse", "SELECT pg_stat_statements_reset()")
                    counters0 = pg_counters(pg, "coinpurse")
                    conns = args.batch_connections if name == "batch" else args.connections
                    during: list[Iterator[None]] = []
                    if name in profile_for:
                        during.append(profiler(server, args.duration,
                                               workdir / f"profile-{name}.txt"))
                    sampler = ActivitySampler(url) if args.pg_stats else None
                    if sampler is not None:
                        during.append(iter(sampler))
                    roots = {"coinpurse": server.pid, "postgres": postmaster_pid(pg)}
                    ledger0 = server.ledger_counters()
                    s = measure(server.base, name, "postgresql", key, args.users, conns,
                                args.duration, roots, tokens_path if name == "reads" else None,
                                during, args.quiet_wait, rate)
                    s.profiled = name in profile_for
                    s.ledger = ledger_delta(ledger0, server.ledger_counters())
                    if sampler is not None:
                        s.pg_activity = sampler.summary()
                        if sampler.error:
                            log(f"  pg_stat_activity sampler failed: {sampler.error}")
                    counters1 = pg_counters(pg, "coinpurse")
                    s.pg_counters = {k: counters1[k] - counters0[k] for k in counters1}
                    log(f"  PostgreSQL: {s.pg_counters['sessions']} new sessions, "
                        f"{s.pg_counters['commits']} commits, "
                        f"{s.pg_counters['rollbacks']} rollbacks")
                    if args.pg_stats:
                        s.pg_statements = top_statements(pg, "coinpurse")
                    s.check = coinpurse_check(env)
                    log(f"  coinpurse check: {'OK' if s.check.ok else 'FAILED'} "
                        f"({s.check.transactions:,} transactions, {s.check.seconds} s)")
                    scenarios[f"{name}-pg"] = s
                    if s.profiled:
                        raws = sorted(workdir.glob(f"profile-{name}-*.txt"))
                        profiles[name] = summarize_profile(raws)
                        args.out.mkdir(parents=True, exist_ok=True)
                        (args.out / f"profile-{name}.txt").write_text(profiles[name])
                        raw_dir = args.out / "profile-raw"  # git-ignored (bench/.gitignore)
                        raw_dir.mkdir(parents=True, exist_ok=True)
                        for old in raw_dir.glob(f"profile-{name}-*.txt"):
                            old.unlink()
                        for raw in raws:
                            shutil.copy(raw, raw_dir / raw.name)
                if "uniform" in wanted and "uniform" not in profile_for and not args.quick:
                    # A separate, unmeasured pass, so the figures above carry no profiler.
                    log("profiling uniform (an extra pass, not in the figures)")
                    seconds = min(args.duration, 10)
                    measure(server.base, "uniform", "postgresql", key, args.users,
                            args.connections, seconds, {"coinpurse": server.pid},
                            during=[profiler(server, seconds,
                                             workdir / "profile-uniform.txt")],
                            quiet_wait=min(args.quiet_wait, 30))
                    raws = sorted(workdir.glob("profile-uniform-*.txt"))
                    profiles["uniform"] = summarize_profile(raws)
                    args.out.mkdir(parents=True, exist_ok=True)
                    (args.out / "profile-uniform.txt").write_text(profiles["uniform"])
                rss["postgresql"] = server.rss_mb()
            finally:
                server.stop()
                server_logs["postgresql"] = server.log_findings()
    finally:
        pg.stop()

    if "sqlite" in wanted:
        url = f"sqlite:///{workdir / 'bench.db'}"
        env = coinpurse_env(url, jwt_secret, extra_env)
        key = prepare_database(env)
        server = CoinpurseServer(env, 1, workdir, "sqlite")
        server.start()
        try:
            log(f"coinpurse serve --workers 1 on SQLite ({url}); funding {args.users:,} users")
            took = fund_users(server.base, key, args.users, secrets.token_hex(4))
            log(f"  funded in {took:.1f} s")
            warm_up(server.base, key, args.users, args.warmup)
            ledger0 = server.ledger_counters()
            s = measure(server.base, "uniform", "sqlite", key, args.users, args.connections,
                        args.duration, {"coinpurse": server.pid}, quiet_wait=args.quiet_wait)
            s.ledger = ledger_delta(ledger0, server.ledger_counters())
            s.check = coinpurse_check(env)
            log(f"  coinpurse check: {'OK' if s.check.ok else 'FAILED'} "
                f"({s.check.transactions:,} transactions, {s.check.seconds} s)")
            scenarios["uniform-sqlite"] = s
            rss["sqlite"] = server.rss_mb()
        finally:
            server.stop()
            server_logs["sqlite"] = server.log_findings()

    commit, dirty = git_commit()
    report: dict[str, Any] = {
        "started_at": started_at,
        "commit": commit,
        "dirty": dirty,
        "quick": args.quick,
        "as_latest": args.as_latest,
        "profiled": bool(profile_for),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "users": args.users,
        "machine": machine(),
        "postgres_settings": {"fsync": "on", "full_page_writes": "on",
                              "synchronous_commit": "on", **pg_settings},
        "coinpurse_env": {"COINPURSE_CURRENCIES": CURRENCIES, **extra_env},
        "workers": args.workers,
        "pgbench": {
            "tps": reference.tps, "clients": reference.clients, "threads": reference.threads,
            "scale": reference.scale, "seconds": reference.seconds,
            "transactions": reference.transactions, "failed": reference.failed,
            "latency_ms": reference.latency_ms, "cpu_seconds": reference.cpu_seconds,
            "cpu_busy_pct": reference.cpu_busy_pct,
            "cpu_others_pct": reference.cpu_others_pct,
            "quiet_wait_s": reference.quiet_wait_s,
        },
        "scenarios": {k: s.as_dict(reference.tps) for k, s in scenarios.items()},
        "server_logs": server_logs,
        "profiles": profiles,
        "rss_mb": rss,
    }
    report["goals"] = goals(scenarios, reference.tps, rss)
    report["checks_ok"] = all(s.check is not None and s.check.ok for s in scenarios.values())
    md = markdown(report, scenarios)
    for name, text in profiles.items():
        md += (f"\n## Profile: Coinpurse's workers during {name} on PostgreSQL (py-spy)\n\n"
               f"```\n{text}```\n")
    paths = write_results(report, md, args.out)
    print()
    print(md)
    for g in report["goals"]:
        print(f"{'PASS' if g['pass'] else 'MISS'}  {g['goal']}: {g['measured']}")
    print(f"invariants ({len(scenarios)} checks): "
          f"{'all OK' if report['checks_ok'] else 'PROBLEMS, see the report'}")
    log("wrote " + ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)
                             for p in paths))
    if args.keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if report["checks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
