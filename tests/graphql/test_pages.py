"""Relay pages backed by REST's cursors, and batched loading: a page of 100 transactions with
their postings is a fixed number of SQL statements, whatever the page's size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx
from sqlalchemy import event

from tests.conftest import MakeKey
from tests.graphql.conftest import Gql, user

PAGE = """
query($first: Int!, $after: String) {
  me {
    transactions(first: $first, after: $after) {
      edges { cursor node { id transactionId amount balanceAfter
                            postings { source destination amount currency } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


async def _credits(client: httpx.AsyncClient, key: str, n: int) -> None:
    """``n`` transactions for alice in one batch call; each has two postings."""
    transfers = [{"postings": [
        {"source": "service:games", "destination": "user:alice", "amount": i + 1,
         "currency": "points"},
        {"source": "service:games", "destination": "platform:fees", "amount": 1,
         "currency": "points"}],
        "description": f"win {i}", "reference_id": f"r{i}"} for i in range(n)]
    r = await client.post("/internal/v1/transfers/batch", json={"transfers": transfers},
                          headers={"X-API-Key": key, "Idempotency-Key": "many"})
    assert r.status_code == 200 and r.json()["posted"] == n, r.text


_COUNTING: ContextVar[list[str] | None] = ContextVar("counting", default=None)


@contextmanager
def statements(app: Any) -> Iterator[list[str]]:
    """Every SQL statement that the code run inside the block sends on the app's engines
    (``before_cursor_execute``). A context variable tells them apart from the background
    jobs' (the live pump, the event consumers, reconciliation), which run meanwhile in
    tasks of their own; the request's tasks (DataLoader batches too) inherit it."""
    state = app.state.coinpurse
    engines = {id(e): e for e in (state.db, getattr(state.reads, "standby", None)) if e}
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        found = _COUNTING.get()
        if found is not None and sql.strip().upper() != "BEGIN":  # SQLite's own BEGIN
            found.append(sql)

    for engine in engines.values():
        event.listen(engine.sync_engine, "before_cursor_execute", count)
    token = _COUNTING.set(seen)
    try:
        yield seen
    finally:
        _COUNTING.reset(token)
        for engine in engines.values():
            event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_pages_follow_rest_cursors(client: httpx.AsyncClient, gql: Gql,
                                         make_key: MakeKey) -> None:
    key = await make_key()
    await _credits(client, key, 250)
    seen: list[dict[str, Any]] = []
    after = None
    rest_cursor = None
    while True:
        answer = await gql(PAGE, {"first": 100, "after": after}, user("alice"))
        assert "errors" not in answer, answer
        page = answer["data"]["me"]["transactions"]
        seen += [e["node"] for e in page["edges"]]
        rest = (await client.get("/api/v1/wallet/transactions", headers=user("alice"),
                                 params={"limit": 100, **({"cursor": rest_cursor}
                                                          if rest_cursor else {})})).json()
        assert [e["node"]["id"] for e in page["edges"]] == [x["id"] for x in rest["data"]]
        assert page["pageInfo"]["endCursor"] == rest["next_cursor"]
        rest_cursor = rest["next_cursor"]
        # Each edge's cursor continues right after it.
        if len(page["edges"]) > 50:
            middle = page["edges"][49]["cursor"]
            rest_after = (await gql(PAGE, {"first": 1, "after": middle}, user("alice")))
            assert rest_after["data"]["me"]["transactions"]["edges"][0]["node"] == \
                page["edges"][50]["node"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == 250 and len({n["id"] for n in seen}) == 250
    assert [n["amount"] for n in seen] == list(range(250, 0, -1))  # newest first
    for n in seen:
        assert n["postings"] == [
            {"source": "service:games", "destination": "user:alice", "amount": n["amount"],
             "currency": "points"},
            {"source": "service:games", "destination": "platform:fees", "amount": 1,
             "currency": "points"}]


async def test_a_page_is_a_fixed_number_of_statements(app: Any, client: httpx.AsyncClient,
                                                      gql: Gql, make_key: MakeKey) -> None:
    key = await make_key()
    await _credits(client, key, 120)
    await gql(PAGE, {"first": 1}, user("alice"))  # warm: the first read of a process
    counts = {}
    for first in (1, 10, 100):
        with statements(app) as seen:
            answer = await gql(PAGE, {"first": first}, user("alice"))
        edges = answer["data"]["me"]["transactions"]["edges"]
        assert len(edges) == first and all(len(e["node"]["postings"]) == 2 for e in edges)
        counts[first] = len(seen)
    assert counts[1] == counts[10] == counts[100], counts
    # The history page (and the read router's freshness check when it has a standby) and
    # one read of the page's postings; transactions are never read one by one.
    assert counts[100] <= 3, (counts, seen)
    with statements(app) as seen:
        await gql(PAGE.replace("postings { source destination amount currency }", "amount"),
                  {"first": 100}, user("alice"))
    assert len(seen) == counts[100] - 1  # no postings asked: not read
