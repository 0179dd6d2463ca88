"""The "has active bonuses?" read before each debit and purchase: many requests asking in
the same turn of the event loop get their answers from one statement, each the right one,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import event

from coinpurse.bonuses import service
from coinpurse.config import Settings
from coinpurse.core.db import create_engine
from tests.bonuses.conftest import granted, promotion
from tests.conftest import MakeKey


async def test_a_burst_of_questions_is_one_read_with_each_answer_right(
        client: httpx.AsyncClient, make_key: MakeKey, settings: Settings) -> None:
    key = await make_key("games", "*")
    promo = await promotion(client, amount=10, wagering_multiplier=3)
    for user in ("b1", "b2"):
        await granted(client, key, user, promo["code"])
    engine = create_engine(settings.database_url, pool_size=2)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "bonuses" in statement:
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        asked = [(f"b{i}", "coins") for i in range(1, 6)] + [("b1", "diamonds"),
                                                               ("b2", "coins")]
        answers = await asyncio.gather(*(service.has_active(engine, u, c) for u, c in asked))
        assert answers == [True, True, False, False, False, False, True]
        assert len(statements) == 1, statements
        # The next turn asks again (no cache): a bonus granted meanwhile is seen.
        await granted(client, key, "b3", promo["code"])
        assert await service.has_active(engine, "b3", "coins") is True
        assert len(statements) == 2
    finally:
        await engine.dispose()
