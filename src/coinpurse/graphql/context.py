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
from coinpurse.http.deps import request_principal, request_service, token_principal
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
        return Wallets(self.state.db, self.state.ledger, self.state.settings, self.state.reads)

    async def principal(self) -> Principal:
        """The user: a Bearer token or the browser's session cookie (with its CSRF check on
        POST); over a WebSocket, a Bearer token in the upgrade request's headers or in
        ``connection_init``'s payload (``{"Authorization": "Bearer <jwt>"}``)."""
        if self._principal is None:
            if isinstance(self.connection, Request):
                self._principal = await request_principal(self.state, self.connection)
            else:
                self._principal = await token_principal(self.state, self._ws_token())
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

    def _ws_token(self) -> str:
        params: Any = self.connection_params
        candidates = [self.connection.headers.get("authorization")]
        if isinstance(params, dict):
            candidates += [params.get("Authorization"), params.get("authorization")]
        for value in candidates:
            if isinstance(value, str) and value[:7].lower() == "bearer " and len(value) > 7:
                return value[7:].strip()
        raise Unauthorized("send a user token: Authorization: Bearer <jwt> in the "
                           "connection_init payload")
