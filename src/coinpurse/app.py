"""create_app(): mount the domains. Each domain brings its routers and its background jobs;
adding one is a folder, a migration and one line in ``DOMAINS``."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI

from coinpurse import __version__
from coinpurse.admin import routes as admin_routes
from coinpurse.auth import routes as auth_routes
from coinpurse.bonuses import jobs as bonuses_jobs
from coinpurse.bonuses import routes as bonuses_routes
from coinpurse.config import Settings, load_settings, unknown_settings
from coinpurse.core import logging as coinpurse_logging
from coinpurse.core import metrics, runtime
from coinpurse.core.jobs import Job, JobRunner
from coinpurse.events import jobs as events_jobs
from coinpurse.events import routes as events_routes
from coinpurse.gifts import routes as gifts_routes
from coinpurse.graphql import routes as graphql_routes
from coinpurse.holds import jobs as holds_jobs
from coinpurse.holds import routes as holds_routes
from coinpurse.http.docs import add_docs
from coinpurse.http.fastpath import FastPath, FastRoute, check_routes
from coinpurse.http.handlers import install_error_handlers
from coinpurse.http.middleware import AddressRateLimit, BodyLimit, RefuseNul
from coinpurse.http.observe import Observe
from coinpurse.http.openapi import add_problem_schema, description, operation_id
from coinpurse.http.shutdown import on_stop_signal
from coinpurse.kyc import routes as kyc_routes
from coinpurse.ledger import jobs as ledger_jobs
from coinpurse.ops import jobs as ops_jobs
from coinpurse.ops import routes as ops_routes
from coinpurse.ops import tracing
from coinpurse.ops.hooks import LedgerMetrics
from coinpurse.partitions import jobs as partitions_jobs
from coinpurse.payments import jobs as payments_jobs
from coinpurse.payments import routes as payments_routes
from coinpurse.reconcile import jobs as reconcile_jobs
from coinpurse.reconcile import routes as reconcile_routes
from coinpurse.shop import routes as shop_routes
from coinpurse.state import AppState, close_state, open_state
from coinpurse.wallets import routes as wallets_routes
from coinpurse.web import routes as web_routes
from coinpurse.withdrawals import jobs as withdrawals_jobs
from coinpurse.withdrawals import routes as withdrawals_routes

log = coinpurse_logging.get_logger("coinpurse")


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    routers: tuple[APIRouter, ...] = ()
    jobs: Callable[[AppState], list[Job]] | None = None
    fast_routes: tuple[FastRoute, ...] = ()  # hot routes also served by http.fastpath


DOMAINS: tuple[Domain, ...] = (
    Domain("ledger", jobs=ledger_jobs.jobs),
    Domain("wallets", (wallets_routes.router, wallets_routes.user_router),
           fast_routes=wallets_routes.fast_routes),
    Domain("holds", (holds_routes.router,), holds_jobs.jobs),
    Domain("gifts", (gifts_routes.router,)),
    Domain("payments", (payments_routes.router,), payments_jobs.jobs),
    Domain("withdrawals", (withdrawals_routes.router,), withdrawals_jobs.jobs),
    Domain("kyc", (kyc_routes.router,)),
    Domain("auth", (auth_routes.router,)),
    Domain("admin", (admin_routes.router,)),
    Domain("events", (events_routes.router, events_routes.admin_router,
                      events_routes.user_router), events_jobs.jobs),
    Domain("ops", (ops_routes.router,), ops_jobs.jobs),
    Domain("reconcile", (reconcile_routes.router,), reconcile_jobs.jobs),
    Domain("shop", (shop_routes.router,)),
    Domain("bonuses", (bonuses_routes.user_router, bonuses_routes.router,
                       bonuses_routes.admin_router), bonuses_jobs.jobs),
    Domain("graphql", (graphql_routes.router,)),  # /graphql over the services above
    Domain("web", (web_routes.router,)),  # the pages: /, /wallet, /console, /static
    Domain("partitions", jobs=partitions_jobs.jobs),
)


# FastAPI's own OpenTelemetry (0.16x) asks the global providers whether to trace on every
# request, about 90 us of CPU (issue 16's profile); Coinpurse's traces, when configured,
# come from OpenTelemetry's instrumentation instead. Older FastAPI has no such parameter.
_NO_NATIVE_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def tune_gc_of(settings: Settings) -> None:
    """At the end of start-up: what is alive now lives as long as the process."""
    frozen = runtime.tune_gc(settings.gc_threshold_values, freeze=settings.gc_freeze)
    log.info("garbage collector tuned", thresholds=settings.gc_thresholds, frozen=frozen)


def background_jobs(state: AppState) -> list[Job]:
    return [job for d in DOMAINS if d.jobs is not None for job in d.jobs(state)]


def create_served_app() -> FastAPI:
    """The app of a ``coinpurse serve`` process: ``create_app`` with the runtime tuned."""
    return create_app(tune_runtime=True)


def create_app(settings: Settings | None = None, *, tune_runtime: bool = False) -> FastAPI:
    """``tune_runtime``: a serving process of its own (core/runtime.py), not a test's app."""
    settings = settings or load_settings()
    coinpurse_logging.configure(settings.log_level, settings.log_format)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for name in unknown_settings():
            log.warning("unknown setting is ignored", setting=name)
        state = await open_state(settings)
        state.ledger.add_hook(LedgerMetrics(state.ledger))
        if tracer is not None:
            tracer.instrument(state.db, state.ledger, state.ledger_db)
        if not state.verifier.configured:
            log.warning("no COINPURSE_JWT_SECRET or COINPURSE_JWT_PUBLIC_KEY: "
                        "the user API will refuse every token")
        app.state.coinpurse = state
        app.state.draining = False
        runner = JobRunner(background_jobs(state))
        app.state.jobs = runner
        runner.start()
        if tune_runtime:
            tune_gc_of(settings)

        def stopping() -> None:
            app.state.draining = True  # /readyz: 503 from the first moment
            state.live.close_all()

        undo_signal = on_stop_signal(stopping)
        try:
            yield
        finally:
            undo_signal()
            # The server has stopped taking requests and finished (or given up on) those
            # in flight; now the jobs stop, the ledger commits what is queued, and the
            # rest closes.
            app.state.draining = True
            await runner.stop()
            await close_state(state, drain_s=settings.shutdown_timeout_s)
            if tracer is not None:
                tracer.shutdown()
            metrics.process_exited()
            coinpurse_logging.flush()

    app = FastAPI(title="Coinpurse", version=__version__, description=description(),
                  lifespan=lifespan, docs_url=None, redoc_url=None,
                  generate_unique_id_function=operation_id, **_NO_NATIVE_TELEMETRY)
    install_error_handlers(app)
    # Innermost, so every middleware below sees the fast routes too (COINPURSE_FAST_PATH).
    fast_routes = [r for d in DOMAINS for r in d.fast_routes] if settings.fast_path else []
    app.add_middleware(FastPath, routes=fast_routes)
    app.add_middleware(RefuseNul)
    app.add_middleware(AddressRateLimit)
    app.add_middleware(BodyLimit, limit=settings.body_max_bytes,
                       batch_limit=settings.batch_body_max_bytes)
    if settings.proxies:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware,
                           trusted_hosts=[str(n) for n in settings.proxies])
    app.add_middleware(Observe)
    tracer = tracing.Tracing(app) if tracing.enabled() else None
    for domain in DOMAINS:
        for router in domain.routers:
            app.include_router(router)
    add_docs(app)
    check_routes(app, fast_routes)
    add_problem_schema(app)
    return app
