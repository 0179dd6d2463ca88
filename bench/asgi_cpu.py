"""CPU per request of Coinpurse's own process, in-process and without a network: the app is
called as an ASGI callable by concurrent tasks, and ``time.process_time()`` (this process's
CPU, every thread) is divided by the requests answered.

What it is for: comparing two settings of the HTTP layer (``COINPURSE_FAST_PATH`` on and
off, by default) on a machine that is too busy for wrk's throughput figures to mean much.
CPU time barely depends on what else runs on the machine, throughput does. The database is
SQLite in a temporary folder, or ``--database-url`` (PostgreSQL, already migrated: tables
are not emptied, users are made unique per run).

    .venv/bin/python bench/asgi_cpu.py [--requests 3000] [--rounds 3] [--concurrency 32]

Prints, per mix (writes: the uniform scenario's credits, debits and transfers; reads: the
balance and first history page), the CPU microseconds per request for each setting, the
median over the rounds, rounds alternating so that drift hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from coinpurse.app import create_app  # noqa: E402
from coinpurse.auth import keys  # noqa: E402
from coinpurse.auth.tokens import issue_hs256  # noqa: E402
from coinpurse.config import Settings  # noqa: E402
from coinpurse.core.db import create_engine, migrate_sync  # noqa: E402

SECRET = "bench-only-secret-not-for-production-000000"
USERS = 1000
Request = tuple[str, str, list[tuple[bytes, bytes]], bytes]


async def call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]],
               body: bytes) -> int:
    """One request through the whole ASGI app (middleware included); returns the status."""
    raw_path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": raw_path,
             "raw_path": raw_path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"bench"), *headers], "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 80)}
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def writes(key: str, nonce: str) -> Callable[[int], Request]:
    """The uniform scenario's mix (bench/wrk/coinpurse.lua)."""
    h = [(b"content-type", b"application/json"), (b"x-api-key", key.encode())]

    def make(i: int) -> Request:
        idem = f"{nonce}-{i}".encode()
        headers = [*h, (b"idempotency-key", idem)]
        r = random.randint(1, 100)
        a, b, c = random.sample(range(1, USERS + 1), 3)
        if r <= 50:
            op = "credit" if r <= 25 else "debit"
            body = {"user_id": str(a), "currency": "points", "amount": random.randint(1, 100),
                    "description": f"bench {op}", "reference_id": idem.decode()}
            return "POST", f"/internal/v1/wallet/{op}", headers, orjson.dumps(body)
        body = {"postings": [
            {"source": f"user:{a}", "destination": f"user:{b}", "amount": 5,
             "currency": "points"},
            {"source": f"user:{a}", "destination": f"user:{c}", "amount": 1,
             "currency": "points"}], "kind": "transfer", "description": "bench transfer",
            "reference_id": idem.decode()}
        return "POST", "/internal/v1/transfers", headers, orjson.dumps(body)

    return make


def reads(key: str, tokens: list[str]) -> Callable[[int], Request]:
    def make(i: int) -> Request:
        if i % 2:
            return ("GET", f"/internal/v1/wallet/balance/{random.randint(1, USERS)}",
                    [(b"x-api-key", key.encode())], b"")
        token = random.choice(tokens)
        return ("GET", "/api/v1/wallet/transactions?limit=20",
                [(b"authorization", f"Bearer {token}".encode())], b"")

    return make


async def drive(app: Any, make: Callable[[int], Request], count: int, concurrency: int,
                start: int) -> tuple[float, dict[int, int]]:
    """CPU seconds of this process for ``count`` requests, and the answers' statuses."""
    numbers = iter(range(start, start + count))
    statuses: dict[int, int] = {}
    requests = [make(i) for i in range(start, start + count)]  # made before the clock

    async def worker() -> None:
        for i in numbers:
            status = await call(app, *requests[i - start])
            statuses[status] = statuses.get(status, 0) + 1

    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - cpu0, statuses


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--database-url", default=None)
    p.add_argument("--postgres", action="store_true",
                   help="start a PostgreSQL server of its own (tests/pgserver.py, fsync on)")
    p.add_argument("--env", action="append", default=[], metavar="SETTING=VALUE",
                   help="the setting compared (default fast_path=true and fast_path=false); "
                        "give it twice")
    args = p.parse_args()
    variants = [dict([e.split("=", 1)]) for e in args.env] or [{"fast_path": "true"},
                                                               {"fast_path": "false"}]
    folder = Path(tempfile.mkdtemp(prefix="coinpurse-asgi-cpu-"))
    url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
    pg = None
    if args.postgres:
        sys.path.insert(0, str(ROOT))
        from tests.pgserver import PgServer

        pg = PgServer(durable=True)
        pg.start()
        url = pg.createdb("coinpurse")
    try:
        await measure(args, variants, url)
    finally:
        if pg is not None:
            pg.stop()


async def measure(args: argparse.Namespace, variants: list[dict[str, str]], url: str) -> None:
    await asyncio.to_thread(migrate_sync, url)  # it runs its own event loop
    engine = create_engine(url, pool_size=1)
    async with engine.begin() as conn:
        _, key = await keys.create_key(conn, "bench", "*")
    await engine.dispose()
    tokens = [issue_hs256(SECRET, str(u)) for u in range(1, 51)]
    nonce = secrets.token_hex(4)
    apps = []
    for v in variants:
        settings = Settings(database_url=url, jwt_secret=SECRET,  # type: ignore[arg-type]
                            currencies="points:0,usdt:2", rate_limit_user="off",
                            rate_limit_ip="off", **v)
        apps.append(create_app(settings))
    results: dict[tuple[str, int], list[float]] = {}
    counter = itertools.count(0, args.requests)
    contexts = [app.router.lifespan_context(app) for app in apps]
    for ctx in contexts:
        await ctx.__aenter__()
    try:
        # Fund the users (through the first app), and warm both up.
        fund_headers = [(b"content-type", b"application/json"), (b"x-api-key", key.encode())]
        for u in range(1, USERS + 1):
            body = {"user_id": str(u), "currency": "points", "amount": 10_000_000,
                    "description": "fund", "reference_id": f"fund-{u}"}
            status = await call(apps[0], "POST", "/internal/v1/wallet/credit",
                                [*fund_headers, (b"idempotency-key", f"{nonce}-f{u}".encode())],
                                orjson.dumps(body))
            assert status == 201, status
        for app in apps:
            await drive(app, writes(key, nonce + "w"), 300, args.concurrency, next(counter))
            await drive(app, reads(key, tokens), 300, args.concurrency, next(counter))
        for _ in range(args.rounds):
            for n, app in enumerate(apps):
                for mix, make in (("writes", writes(key, nonce)), ("reads", reads(key, tokens))):
                    cpu, statuses = await drive(app, make, args.requests, args.concurrency,
                                                next(counter))
                    bad = {s: c for s, c in statuses.items() if s >= 300 and s != 422}
                    assert not bad, f"unexpected answers {bad}"
                    results.setdefault((mix, n), []).append(1e6 * cpu / args.requests)
    finally:
        for ctx in contexts:
            await ctx.__aexit__(None, None, None)
    print(f"CPU microseconds per request of this process ({args.requests} requests x "
          f"{args.rounds} rounds, {args.concurrency} concurrent, {url.split(':')[0]}):")
    for mix in ("writes", "reads"):
        cells = []
        for n, v in enumerate(variants):
            values = results[(mix, n)]
            cells.append(f"{v}: {statistics.median(values):,.0f} "
                         f"({', '.join(f'{x:,.0f}' for x in values)})")
        print(f"  {mix}: " + "; ".join(cells))
    from coinpurse.http import fastpath

    print(f"  fast path: {fastpath.counts}")


if __name__ == "__main__":
    asyncio.run(main())
