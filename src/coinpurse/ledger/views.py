"""JSON views of ledger outcomes, and the renderers that turn them into stored responses.

A response is rendered inside the batch, before commit, because the idempotency row that
replays it is written in the same commit as the money movement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from coinpurse.ledger.errors import REJECTIONS
from coinpurse.ledger.idempotency import StoredResponse
from coinpurse.ledger.model import Outcome, Rejection, Transaction


def transaction_view(tx: Transaction) -> dict[str, Any]:
    spec = tx.spec
    return {
        "id": tx.id,
        "kind": spec.kind,
        "description": spec.description,
        "reference_id": spec.reference_id,
        "metadata": dict(spec.metadata),
        "postings": [
            {"source": p.source, "destination": p.destination, "amount": p.amount,
             "currency": p.currency}
            for p in spec.postings
        ],
        "service": spec.service,
        "initiator": spec.initiator,
        "internal_notes": spec.internal_notes,
        "idempotency_key": tx.idempotency_key,
        "created_at": tx.created_at.isoformat().replace("+00:00", "Z"),
        "balances": [
            {"address": a, "currency": c, **b.as_dict()}
            for (a, c), b in sorted(tx.balances_after.items())
        ],
    }


def rejection_problem(rejection: Rejection) -> StoredResponse:
    """The problem a refused operation answers with: the domain's error it carries, or the
    one the engine's code stands for."""
    err = rejection.error
    if err is None:
        extra: dict[str, Any] = {}
        if rejection.posting_index is not None:
            extra["posting_index"] = rejection.posting_index
        err = REJECTIONS[rejection.code](rejection.detail, **extra)
    return StoredResponse(err.status, err.problem_bytes())


def render_one(
    answer: Callable[[Transaction], bytes], status: int = 201,
) -> Callable[[list[Outcome]], StoredResponse]:
    """Renderer for a request that posts a single transaction: its answer, or its problem."""

    def render(outcomes: list[Outcome]) -> StoredResponse:
        (outcome,) = outcomes
        if isinstance(outcome, Rejection):
            return rejection_problem(outcome)
        assert isinstance(outcome, Transaction)
        return StoredResponse(status, answer(outcome))

    return render
