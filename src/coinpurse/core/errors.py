"""Expected failures: each has a stable snake_case ``code`` and an HTTP status.

The HTTP edge renders them as RFC 9457 ``application/problem+json``; nothing below the routes
imports the web framework, so services raise these and stay testable on their own.

Every subclass that declares a ``code`` registers itself (``registered()``), so a domain's
``errors.py`` is all it takes for its codes to reach the OpenAPI document and the README's
table: there is no hand-kept list to forget.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from coinpurse.core.logging import current_request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"
# RFC 9457 members and ours: an error's extra fields must never overwrite them (a
# withdrawal's ``status`` once replaced the numeric HTTP status with "approved").
RESERVED_MEMBERS = frozenset({"type", "title", "status", "detail", "code", "instance",
                              "request_id"})

_REGISTRY: dict[str, type[CoinpurseError]] = {}


class CoinpurseError(Exception):
    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:  # declares its own code, not an alias of its parent's
            _REGISTRY.setdefault(cls.code, cls)

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        clash = RESERVED_MEMBERS & extra.keys()
        assert not clash, f"problem extras would overwrite {sorted(clash)}"
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra
        self.headers: dict[str, str] = {}

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body

    def problem_bytes(self) -> bytes:
        """The body on the wire: with the request's id when answered during a request (a
        ledger refusal rendered by its committer, and stored for replays, has none)."""
        body = self.problem()
        request_id = current_request_id()
        if request_id is not None:
            body["request_id"] = request_id
        return orjson.dumps(body)


def registered() -> tuple[type[CoinpurseError], ...]:
    """Every error class a client may see, in the order they were defined."""
    return (*_REGISTRY.values(), CoinpurseError)


class ValidationFailed(CoinpurseError):
    code = "validation_error"
    status = 422
    title = "The request is not valid"

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail, errors=errors or [], **extra)


def field_error(location: str, detail: str, kind: str, msg: str | None = None,
                **extra: Any) -> ValidationFailed:
    """A validation error about one body field, shaped like pydantic's."""
    return ValidationFailed(detail, [{"loc": ["body", location], "msg": msg or detail,
                                      "type": kind}], **extra)


class Unauthorized(CoinpurseError):
    code = "unauthorized"
    status = 401
    title = "Authentication required"


class Forbidden(CoinpurseError):
    code = "forbidden"
    status = 403
    title = "Not allowed"


class NotFound(CoinpurseError):
    code = "not_found"
    status = 404
    title = "Not found"


class MethodNotAllowed(CoinpurseError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class Conflict(CoinpurseError):
    code = "conflict"
    status = 409
    title = "The request conflicts with the current state"


class PayloadTooLarge(CoinpurseError):
    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(CoinpurseError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class RateLimited(CoinpurseError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.headers["Retry-After"] = str(retry_after_s)


class ServiceUnavailable(CoinpurseError):
    code = "service_unavailable"
    status = 503
    title = "Service unavailable; retry with the same idempotency key"


class Overloaded(CoinpurseError):
    code = "overloaded"
    status = 503
    title = "Too many requests are waiting; retry shortly with the same idempotency key"

    def __init__(self, detail: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.headers["Retry-After"] = str(retry_after_s)
