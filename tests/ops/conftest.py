"""Helpers of the operations tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from coinpurse.auth import keys
from coinpurse.core.db import create_engine


def create_key(db_url: str, service: str = "games", scopes: str = "*") -> str:
    async def make() -> str:
        engine = create_engine(db_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                _, secret = await keys.create_key(conn, service, scopes)
        finally:
            await engine.dispose()
        return secret

    return asyncio.run(make())


@pytest.fixture
def make_key_sync() -> Callable[..., str]:
    return create_key
