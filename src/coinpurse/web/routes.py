"""The web wallet (``/wallet``) and the admin console (``/console``): two HTML shells and our
own ES modules and CSS, served by Coinpurse itself with a strict Content-Security-Policy.

The pages hold no business logic of their own: every action is a call to the public API
(same origin, the session cookie and the CSRF header), so whatever a page does, the API does.
Assets live under ``/static/<build>/``, where ``build`` is a hash of their contents.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import RedirectResponse, Response

from coinpurse.core.errors import NotFound
from coinpurse.http.responses import problem_response
from coinpurse.web import service

router = APIRouter(include_in_schema=False)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _page(body: bytes) -> Response:
    return Response(body, media_type="text/html; charset=utf-8",
                    headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/wallet", status_code=302)


@router.get("/wallet")
@router.get("/wallet/{rest:path}")
async def wallet(rest: str = "") -> Response:
    """Every wallet address is the same shell; the module shows the view it names."""
    return _page(service.WALLET_HTML)


@router.get("/console")
@router.get("/console/{rest:path}")
async def console(rest: str = "") -> Response:
    return _page(service.CONSOLE_HTML)


@router.get("/static/{build}/{name}")
async def static(build: Annotated[str, Path(max_length=32)],
                 name: Annotated[str, Path(max_length=64)]) -> Response:
    """Cached for a year under the current build; an old build's URL is still answered (a
    page open during a release), but not cached."""
    found = service.asset(name)
    if found is None:
        return problem_response(NotFound(f"no asset {name!r}"))
    cache = ("public, max-age=31536000, immutable" if build == service.BUILD else "no-cache")
    return Response(found.body, media_type=found.media_type,
                    headers={**SECURITY_HEADERS, "Cache-Control": cache})
