"""Who is calling a GraphQL operation: resolved lazily, once per request, by the HTTP
edge's own functions (``http.deps``), so the rules are the REST API's."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection, Request
from strawberry.fastapi import BaseContext

from coinpurse.auth.keys import ServiceKey
from coinpurse.auth.tokens import Principal
from coinpurse.core.errors import Unauthorized
from coinpurse.graphql.loaders import Loaders
from coinpurse.http.deps import connection_principal, request_principal, request_service
from coinpurse.state import AppState
from coinpurse.wallets.service import Wallets


class Context(BaseContext):
    def __init__(self, state: AppState, connection: HTTPConnection) -> None:
        super().__init__()
        self.state = state
        self.connection = connection
        self.loaders = Loaders(self.wallets())
        self._principal: Principal | None = None
        self._service: ServiceKey | None = None

    def wallets(self) -> Wallets:
        return Wallets(self.state.db, self.state.ledger, self.state.settings,
                       self.state.settings, self.state.reads)

    async def principal(self) -> Principal:
        """The user: a Bearer token or the browser's session cookie (with its CSRF check on
        POST); over a WebSocket, as the live stream's (``http.deps.connection_principal``):
        the upgrade request's Bearer token, or a token in ``connection_init``'s payload
        (``{"Authorization": "Bearer <jwt>"}`` or ``{"token": "<jwt>"}``), or the session
        cookie from this server's own pages."""
        if self._principal is None:
            if isinstance(self.connection, Request):
                self._principal = await request_principal(self.state, self.connection)
            else:
                self._principal = await connection_principal(self.state, self.connection,
                                                             self._ws_token())
        return self._principal

    async def user_id(self) -> str:
        return (await self.principal()).user_id

    async def service(self, scope: str) -> ServiceKey:
        """A service key (``X-API-Key``) that holds ``scope``."""
        if self._service is None:
            if not isinstance(self.connection, Request):
                raise Unauthorized("service keys call GraphQL over HTTP")
            self._service = await request_service(self.state, self.connection)
        self._service.require(scope)
        return self._service

    def _ws_token(self) -> str | None:
        params: Any = self.connection_params
        if not isinstance(params, dict):
            return None
        token = params.get("token")
        if isinstance(token, str) and token:
            return token
        for value in (params.get("Authorization"), params.get("authorization")):
            if isinstance(value, str) and value[:7].lower() == "bearer " and len(value) > 7:
                return value[7:].strip()
        return None
