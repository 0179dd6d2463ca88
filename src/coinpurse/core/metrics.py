"""Prometheus metrics: the one place they are declared, and the small API the rest of
Coinpurse records through.

With several server processes (``serve --workers N``) prometheus-client's multiprocess mode
is on: ``coinpurse serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at an empty folder before the
workers start, each process writes its values there, and whichever process answers
``/metrics`` (or the ``--metrics-port`` server) adds them up. That variable must be set
before ``prometheus_client`` is first imported in a process, which is why nothing imports
this module from a settings module.

Recording is cheap (a dictionary lookup and one or two memory writes): it runs on every
request and every ledger batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0)

HTTP_REQUESTS = Histogram(
    "coinpurse_http_request_duration_seconds",
    "HTTP requests by method, route template and status: latency (its _count is the "
    "number of requests).",
    ["method", "route", "status"], buckets=_LATENCY_BUCKETS)
REFUSALS = Counter(
    "coinpurse_refusals", "Problem answers (4xx and 5xx) by their code.", ["code", "status"])
IDEMPOTENT_REPLAYS = Counter(
    "coinpurse_idempotent_replays", "Answers replayed for a repeated idempotency key.")

LEDGER_BATCHES = Counter("coinpurse_ledger_batches", "Ledger batches committed.")
LEDGER_BATCH_JOBS = Histogram(
    "coinpurse_ledger_batch_jobs", "Requests (jobs) per committed ledger batch.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000))
LEDGER_COMMIT_SECONDS = Histogram(
    "coinpurse_ledger_commit_seconds",
    "Time of one ledger batch, from its start to its commit.", buckets=_LATENCY_BUCKETS)
LEDGER_QUEUE_DEPTH = Gauge(
    "coinpurse_ledger_queue_depth", "Ledger jobs waiting for a committer (all processes).",
    multiprocess_mode="livesum")
TRANSACTIONS = Counter(
    "coinpurse_ledger_transactions", "Transactions posted, by currency and kind.",
    ["currency", "kind"])
VOLUME = Counter(
    "coinpurse_ledger_volume",
    "Amount posted in minor units, by currency and kind (each posting counted once).",
    ["currency", "kind"])

INBOX_BACKLOG = Gauge(
    "coinpurse_webhook_inbox_backlog", "Provider webhook events received but not yet applied.",
    multiprocess_mode="livemax")
INBOX_OLDEST_AGE = Gauge(
    "coinpurse_webhook_inbox_oldest_age_seconds",
    "Age of the oldest webhook event waiting to be applied (0 when none).",
    multiprocess_mode="livemax")
DELIVERIES = Counter(
    "coinpurse_deliveries", "Outbound calls (the payment providers' APIs: kind such as "
    "stripe.checkout or razorpay.confirm; webhooks to services: kind webhook) by kind and "
    "outcome (ok, failed).",
    ["kind", "outcome"])
DELIVERY_SECONDS = Histogram(
    "coinpurse_delivery_duration_seconds", "Time of one outbound call.", ["kind"],
    buckets=_LATENCY_BUCKETS)
DB_POOL_IN_USE = Gauge(
    "coinpurse_db_pool_in_use", "Database connections checked out of the pools.",
    multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge(
    "coinpurse_db_pool_size", "Database connections the pools may hold.",
    multiprocess_mode="livesum")
JOB_FAILURES = Counter(
    "coinpurse_job_failures", "Failed passes of background jobs.", ["job"])


def record_delivery(kind: str, outcome: str, seconds: float | None = None) -> None:
    """One outbound call: ``kind`` such as ``stripe.checkout``, ``outcome`` ``ok`` or
    ``failed`` (the other side could not be reached or answered an error)."""
    DELIVERIES.labels(kind, outcome).inc()
    if seconds is not None:
        DELIVERY_SECONDS.labels(kind).observe(seconds)


def record_posted(postings: Iterable[tuple[str, str, int]]) -> None:
    """``(currency, kind, amount)`` of each posting of the transactions just committed."""
    for currency, kind, amount in postings:
        VOLUME.labels(currency, kind).inc(amount)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> bytes:
    """The exposition text: every process's values in multiprocess mode, else this one's."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def process_exited(pid: int | None = None) -> None:
    """Drop a finished process's live gauges (multiprocess mode)."""
    if multiprocess_mode():
        _multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]
