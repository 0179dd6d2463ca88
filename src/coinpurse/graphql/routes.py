"""``/graphql``: Strawberry's router (POST, GET for queries, WebSocket subscriptions over
graphql-transport-ws), with the caller resolved as the REST API resolves it. No GraphiQL:
it loads from a CDN, and Coinpurse's pages load nothing from outside."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from coinpurse.graphql.context import Context
from coinpurse.graphql.schema import schema
from coinpurse.state import AppState


async def get_context(connection: HTTPConnection) -> Context:
    state: AppState = connection.app.state.coinpurse
    return Context(state, connection)


router: GraphQLRouter[Context, None] = GraphQLRouter(
    schema, path="/graphql", graphql_ide=None, allow_queries_via_get=True,
    context_getter=get_context, subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
    tags=["graphql"], include_in_schema=False)
