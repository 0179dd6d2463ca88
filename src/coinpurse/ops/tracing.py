"""OpenTelemetry traces, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its traces variant) is set:
a span per request (FastAPI), per database statement (SQLAlchemy), and per ledger batch
with its size. Off, nothing of OpenTelemetry is even imported.

Needs the ``otel`` extra (``pip install 'coinpurse[otel]'``); the exporter reads the
standard ``OTEL_*`` variables (endpoint, headers, ``OTEL_SERVICE_NAME``...).
"""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinpurse.ledger.service import CommittedBatch, Ledger

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def enabled() -> bool:
    return any(os.environ.get(v) for v in ENDPOINT_VARIABLES)


class Tracing:
    """The tracer provider of this process and what it instruments."""

    def __init__(self, app: FastAPI) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:  # pragma: no cover - the message is the point
            raise RuntimeError("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not "
                               "installed: pip install 'coinpurse[otel]'") from None
        name = os.environ.get("OTEL_SERVICE_NAME", "coinpurse")
        self.provider = TracerProvider(resource=Resource.create({"service.name": name}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        FastAPIInstrumentor.instrument_app(app, tracer_provider=self.provider,
                                           excluded_urls="healthz,readyz,metrics")

    def instrument(self, db: AsyncEngine, ledger: Ledger,
                   ledger_db: AsyncEngine | None = None) -> None:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # skip_dep_check: the instrumentation declares SQLAlchemy < 2.1 while it works with
        # the 2.1 series (its event API is unchanged); a test checks the SQL spans arrive.
        # The ledger committers' own pool too (PostgreSQL); one call: the instrumentor is
        # a singleton that ignores a second ``instrument()``.
        SQLAlchemyInstrumentor().instrument(
            engines=[e.sync_engine for e in (db, ledger_db) if e is not None],
            tracer_provider=self.provider, skip_dep_check=True)
        ledger.add_hook(LedgerSpans(self.provider.get_tracer("coinpurse.ledger")))

    def shutdown(self) -> None:
        self.provider.shutdown()  # exports what is still buffered


class LedgerSpans:
    """A span per committed ledger batch, from its start to its commit."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    async def write(self, conn: AsyncConnection, batch: CommittedBatch) -> None:
        return None

    def committed(self, batch: CommittedBatch) -> None:
        span = self._tracer.start_span("ledger.batch",
                                       start_time=int(batch.at.timestamp() * 1e9))
        span.set_attribute("coinpurse.batch.transactions", len(batch.transactions))
        span.set_attribute("coinpurse.batch.hold_operations", len(batch.holds))
        span.end(end_time=time.time_ns())
