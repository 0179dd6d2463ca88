"""``/graphql``: Strawberry's router (POST, GET for queries; subscriptions over a WebSocket
with graphql-transport-ws, or over SSE with graphql-sse's distinct connections), with the
caller resolved as the REST API resolves it. No GraphiQL: it loads from a CDN, and
Coinpurse's pages load nothing from outside."""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from starlette.requests import HTTPConnection
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET

from coinpurse.core.errors import MethodNotAllowed, NotFound, ValidationFailed
from coinpurse.graphql.context import Context
from coinpurse.graphql.schema import schema
from coinpurse.state import AppState


async def get_context(connection: HTTPConnection) -> Context:
    state: AppState = connection.app.state.coinpurse
    return Context(state, connection)


class Router(GraphQLRouter[Context, None]):
    async def run(self, request: Any, context: Any = UNSET,
                  root_value: Any = UNSET) -> Any:
        """A request that is not GraphQL at all (no query, a body that is not JSON, a
        mutation over GET) gets problem+json with REST's codes, not Strawberry's text."""
        try:
            return await super().run(request, context, root_value)
        except HTTPException as exc:
            if exc.status_code == 405 or "not allowed when using GET" in exc.reason:
                raise MethodNotAllowed(exc.reason) from None
            if exc.status_code == 404:
                raise NotFound("no GraphiQL here: POST (or GET) a query") from None
            raise ValidationFailed(exc.reason, reason="invalid_request") from None


router = Router(
    schema, path="/graphql", graphql_ide=None, allow_queries_via_get=True,
    context_getter=get_context,
    subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
    max_subscriptions_per_connection=10,
    tags=["graphql"], include_in_schema=False)
