"""``coinpurse partitions``: list, create ahead, detach old months (coinpurse.partitions)."""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Any

import click


def _month(value: str) -> date:
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a month such as 2026-01") from None


@click.group()
def partitions() -> None:
    """Monthly partitions of the history tables (PostgreSQL)."""


@partitions.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(as_json: bool) -> None:
    """The attached partitions of each history table, and how many months are ready ahead."""
    from coinpurse import partitions as p
    from coinpurse.cli import _run, _settings

    async def read(conn: Any) -> dict[str, Any]:
        tables = {t: [{"name": x.name, "month": x.month.isoformat()[:7],
                       "rows_estimate": x.rows} for x in await p.partitions(conn, t)]
                  for t in p.HISTORY_TABLES if await p.is_partitioned(conn, t)}
        return {"tables": tables, "months_ahead": await p.ahead(conn)}

    found = _run(_settings(), read, write=False)
    if as_json:
        click.echo(json.dumps(found))
        return
    if not found["tables"]:
        click.echo("the history tables are not partitioned (SQLite keeps plain tables)")
        return
    for table, parts in found["tables"].items():
        click.echo(f"{table}: " + ", ".join(x["month"] for x in parts))
    click.echo(f"months ready after the current one: {found['months_ahead']}")


@partitions.command("ensure")
@click.option("--ahead", "ahead_months", default=1, show_default=True,
              type=click.IntRange(0, 24), help="Months to create after the current one.")
def ensure_cmd(ahead_months: int) -> None:
    """Create the coming months' partitions now (the worker does it every hour)."""
    from coinpurse import partitions as p
    from coinpurse.cli import _run, _settings

    created = _run(_settings(), lambda c: p.ensure(c, ahead_months=ahead_months), write=True)
    click.echo("created: " + (", ".join(created) or "nothing, all there"))


@partitions.command("detach")
@click.option("--before", "before", required=True, help="Detach the months before this one "
              "(YYYY-MM), from every history table.")
def detach_cmd(before: str) -> None:
    """Detach old months for archiving: each becomes a plain table (pg_dump -t it, then
    DROP TABLE). Balances stay; `coinpurse check` counts the detached entries' totals."""
    from coinpurse import partitions as p
    from coinpurse.cli import _run, _settings

    month = _month(before)
    try:
        detached = _run(_settings(), lambda c: p.detach_before(c, month), write=True)
    except ValueError as exc:
        click.echo(f"coinpurse: {exc}", err=True)
        sys.exit(2)
    click.echo("detached: " + (", ".join(detached) or "nothing before " + before))
