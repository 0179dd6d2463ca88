"""Reconciliation runs for operators: list, read, start (``/admin/v1/reconciliations``)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request
from starlette.responses import Response

from coinpurse.core import cursor
from coinpurse.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from coinpurse.core.pages import PAGE_MAX
from coinpurse.http.deps import Admin, AdminWriter, State, client_ip
from coinpurse.http.responses import json_response, problems
from coinpurse.payments.errors import ProviderNotEnabled
from coinpurse.reconcile import schemas as s
from coinpurse.reconcile.errors import ReconciliationRunning
from coinpurse.reconcile.model import KINDS, STATUSES, Run
from coinpurse.reconcile.service import Audit, Period, Reconciler

router = APIRouter(prefix="/admin/v1", tags=["reconciliation"])
log = logging.getLogger("coinpurse.reconcile")
_READ = (Unauthorized, Forbidden, ValidationFailed)


def _reconciler(state: State) -> Reconciler:
    return Reconciler(state.db, state.settings, state.settings)


@router.get("/reconciliations", response_model=s.ReconciliationPage,
            responses=problems(*_READ), summary="Reconciliation runs, newest first")
async def list_runs(
    admin: Admin, state: State,
    kind: Annotated[str | None, Query(pattern="^(" + "|".join(KINDS) + ")$")] = None,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
    cursor_: Annotated[str | None, Query(alias="cursor", max_length=96)] = None,
) -> Response:
    """Every run, scheduled (`COINPURSE_RECONCILE_AT`), from the CLI or from this API,
    with what it checked and how many discrepancies it found."""
    runs, next_id = await _reconciler(state).page(kind=kind, status=status,
                                                  before=cursor.decode_text(cursor_),
                                                  limit=limit)
    return json_response(s.ReconciliationPage.of(runs, next_id).answer())


@router.get("/reconciliations/{run_id}", response_model=s.ReconciliationDetailOut,
            responses=problems(*_READ, NotFound), summary="A run with its discrepancies",
            description="Each discrepancy names the account, entry, transaction, order, "
            "shop order or withdrawal, with the expected and the actual value. The "
            "checks:\n\n"
            + s.checks_table())
async def get_run(run_id: Annotated[str, Path(max_length=36)], admin: Admin,
                  state: State) -> Response:
    found = await _reconciler(state).get(run_id)
    return json_response(s.ReconciliationDetailOut.detail(found).answer())


@router.post("/reconciliations", status_code=202, response_model=s.ReconciliationOut,
             responses=problems(*_READ, ReconciliationRunning, ProviderNotEnabled),
             summary="Start a reconciliation run")
async def start_run(body: s.ReconciliationIn, admin: AdminWriter, state: State,
                    request: Request, background: BackgroundTasks) -> Response:
    """Answers at once (202) with the run, `running`; it goes on in this server process.
    Follow it with `GET /admin/v1/reconciliations/{id}`. One run of a kind at a time
    (`reconciliation_running`). A run that finds discrepancies writes a
    `reconciliation.failed` event. Recorded in the audit log."""
    rec = _reconciler(state)
    period = None
    if body.kind == "provider":
        assert body.provider and body.period_from and body.period_to
        rec.check_provider(body.provider)
        period = Period.of_days(body.period_from, body.period_to)
    run = await rec.begin(body.kind, mode="period" if period else body.mode,
                          trigger=f"admin:{admin.user_id}", provider=body.provider,
                          period=period, audit=Audit(admin.user_id, admin.role,
                                                     client_ip(request),
                                                     body.model_dump(mode="json")))
    background.add_task(_carry_out, rec, run)
    return json_response(s.ReconciliationOut.of(run).answer(), status=202)


async def _carry_out(rec: Reconciler, run: Run) -> None:
    try:
        await rec.execute(run)
    except Exception:  # stored on the run as an error, and logged; never the client's 500
        log.exception("reconciliation %s failed to run", run.id)
