"""The user API: a user's own balances and history, never anyone else's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from coinpurse.deps import State, UserId, problems
from coinpurse.errors import Unauthorized, UnknownCurrency, ValidationFailed
from coinpurse.internal import schemas as s
from coinpurse.internal.routes import history_page
from coinpurse.kit.http import json_response
from coinpurse.ledger import queries

router = APIRouter(prefix="/api/v1", tags=["user"])


@router.get("/wallet/balance", response_model=s.WalletsOut,
            responses=problems(Unauthorized), summary="The caller's balances")
async def my_balance(user_id: UserId, state: State) -> Response:
    """`balance` is what was posted, `held` what open holds reserve, `available` the rest."""
    async with state.db.connect() as conn:
        found = await queries.balances(conn, f"user:{user_id}", state.settings.currency_map)
    return json_response(
        {"user_id": user_id, "wallets": {c: b.as_dict() for c, b in found.items()}}
    )


@router.get("/wallet/transactions", response_model=s.HistoryPage,
            responses=problems(Unauthorized, ValidationFailed, UnknownCurrency),
            summary="The caller's history, newest first")
async def my_history(
    user_id: UserId,
    state: State,
    currency: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.PAGE_MAX)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Pass `next_cursor` back as `cursor` for the next page; it is null on the last one."""
    return await history_page(state, user_id, currency, limit, cursor, audit=False)
