"""create_app(): routers, middleware, error handlers, and the ledger's life cycle."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coinpurse import __version__
from coinpurse.admin.routes import router as admin_router
from coinpurse.auth.keycache import KeyCache
from coinpurse.auth.routes import router as auth_router
from coinpurse.auth.tokens import TokenVerifier
from coinpurse.background import start_background, stop_background
from coinpurse.cluster.http import install_fault_handlers
from coinpurse.config import Settings, load_settings
from coinpurse.db import create_engine
from coinpurse.errors import (
    ALL_ERRORS,
    CoinpurseError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from coinpurse.gifts.routes import router as gifts_router
from coinpurse.holds.routes import router as holds_router
from coinpurse.internal.routes import router as internal_router
from coinpurse.kit.http import json_response, problem_response
from coinpurse.kyc.routes import router as kyc_router
from coinpurse.ledger.service import Ledger
from coinpurse.payments.routes import router as payments_router
from coinpurse.ratelimit import RateLimits
from coinpurse.state import AppState
from coinpurse.wallets.routes import router as wallet_router
from coinpurse.withdrawals.routes import router as withdrawals_router

log = logging.getLogger("coinpurse")

BATCH_PATH_SUFFIX = "/batch"

DESCRIPTION = """
Wallets and a double-entry ledger for your app's users.

* **Internal API** (`/internal/v1`, header `X-API-Key`): credit, debit and transfer money,
  read any balance and the audit history. Every POST needs an `Idempotency-Key` header.
* **User API** (`/api/v1`, `Authorization: Bearer <jwt>`): the caller's balances and history.

Amounts are JSON integers in minor units. Errors are `application/problem+json` with a
stable `code`: """ + ", ".join(f"`{e.code}`" for e in ALL_ERRORS) + "."


class BodyLimit:
    """Refuse bodies over the limit before reading them whole (413 ``payload_too_large``)."""

    def __init__(self, app: ASGIApp, limit: int, batch_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.batch_limit = batch_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.batch_limit if path.endswith(BATCH_PATH_SUFFIX) else self.limit
        too_large = PayloadTooLarge(f"the request body is larger than {limit} bytes")
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await problem_response(too_large)(scope, receive, send)
                return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(too_large.detail)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await problem_response(too_large)(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive``. An HTTPException, because FastAPI turns any other exception
    raised while it reads the body into a 400, so a chunked body over the limit would have
    been answered 422 ``validation_error`` instead of 413."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class RefuseNul:
    """Refuse a NUL in the path or the query string (422) before any route sees it.

    PostgreSQL can neither store nor compare text holding a NUL, so a parameter without a
    pattern carried one into a query and failed there as a 500; no API takes one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query: bytes = scope.get("query_string", b"")
            where = ("path" if "\x00" in scope["path"] else
                     "query" if b"%00" in query or b"\x00" in query else None)
            if where is not None:
                err = ValidationFailed(f"the {where} must not contain NUL characters", [
                    {"loc": [where], "msg": "must not contain NUL characters",
                     "type": "string_nul"}])
                await problem_response(err)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class AddressRateLimit:
    """Per-client-address limit on the user and admin APIs (backends calling /internal
    share few addresses, so they are limited per key instead)."""

    PREFIXES = ("/api/", "/admin/")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.PREFIXES):
            state: AppState | None = getattr(scope["app"].state, "coinpurse", None)
            client = scope.get("client")
            if state is not None:
                try:
                    await state.rate_limits.hit(state.rate_limits.ip, "ip",
                                                client[0] if client else "unknown")
                except RateLimited as exc:
                    await problem_response(exc)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _validation_problem(exc: RequestValidationError) -> ValidationFailed:
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        errors.append({
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        })
    if any(e["type"] == "json_invalid" for e in errors):
        return ValidationFailed("the request body is not valid JSON", errors)
    fields = ", ".join(".".join(e["loc"][1:]) or e["loc"][0] for e in errors[:5] if e["loc"])
    return ValidationFailed(f"invalid request: {fields}", errors)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CoinpurseError)
    async def _coinpurse(_r: Request, exc: CoinpurseError) -> Response:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> Response:
        return problem_response(_validation_problem(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> Response:
        """Starlette's own errors, in our problem format with our stable codes."""
        err: CoinpurseError
        if exc.status_code == 404:
            err = NotFound("no such route")
        elif exc.status_code == 405:
            err = MethodNotAllowed("this route does not take that method")
        elif exc.status_code == 413:
            err = PayloadTooLarge(str(exc.detail))
        elif exc.status_code == 401:
            err = Unauthorized(str(exc.detail))
        elif exc.status_code == 403:
            err = Forbidden(str(exc.detail))
        elif exc.status_code < 500:
            err = ValidationFailed(f"the request could not be read: {exc.detail}")
        else:
            err = CoinpurseError("an unexpected error occurred")
        return problem_response(err, headers=exc.headers)  # e.g. Allow on a 405

    @app.exception_handler(Exception)
    async def _unexpected(_r: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(CoinpurseError("an unexpected error occurred"))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = create_engine(settings.database_url, pool_size=settings.db_pool_size,
                           options=settings.db_options)
        ledger = Ledger(
            db,
            may_go_negative=settings.may_go_negative,
            idempotency_ttl_s=settings.idempotency_ttl_s,
            batch_max=settings.batch_max,
            committers=settings.committer_count,
            retry_s=settings.db_retry_s,
        )
        verifier = TokenVerifier(
            secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
            public_key=settings.jwt_public_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        if not verifier.configured:
            log.warning("no COINPURSE_JWT_SECRET or COINPURSE_JWT_PUBLIC_KEY: "
                        "the user API will refuse every token")
        key_cache = KeyCache()
        read_db = create_engine(settings.read_database_url, pool_size=settings.db_pool_size,
                                options=settings.db_options) \
            if settings.read_database_url else None
        app.state.coinpurse = AppState(settings=settings, db=db, ledger=ledger,
                                       verifier=verifier, rate_limits=RateLimits(settings),
                                       key_cache=key_cache, read_db=read_db)
        key_cache.start(*settings.direct_db)
        await ledger.start()
        background = start_background(db, ledger, settings)
        try:
            yield
        finally:
            await stop_background(background)
            await ledger.stop()
            await key_cache.stop()
            await db.dispose()
            if read_db is not None:
                await read_db.dispose()

    app = FastAPI(
        title="Coinpurse",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_fault_handlers(app)
    app.add_middleware(RefuseNul)
    app.add_middleware(AddressRateLimit)
    app.add_middleware(BodyLimit, limit=settings.body_max_bytes,
                       batch_limit=settings.batch_body_max_bytes)
    app.include_router(internal_router)
    app.include_router(holds_router)
    app.include_router(gifts_router)
    app.include_router(wallet_router)
    app.include_router(payments_router)
    app.include_router(withdrawals_router)
    app.include_router(kyc_router)
    app.include_router(auth_router)
    app.include_router(admin_router)

    @app.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    async def healthz() -> Response:
        return json_response({"status": "ok", "version": __version__})

    _add_problem_schema(app)
    return app


def _add_problem_schema(app: FastAPI) -> None:
    """Declare the Problem schema the routes' ``responses=`` refer to."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = {
            "type": "object",
            "description": "RFC 9457 problem details with a stable `code`.",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "code": {"type": "string", "enum": sorted({e.code for e in ALL_ERRORS})},
                "errors": {"type": "array", "items": {"type": "object"},
                           "description": "Field errors, for validation_error."},
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
