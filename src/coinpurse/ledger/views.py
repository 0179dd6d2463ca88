"""JSON views of ledger outcomes, and the renderers that turn them into stored responses.

A response is rendered inside the batch, before commit, because the idempotency row that
replays it is written in the same commit as the money movement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from coinpurse.errors import REJECTIONS
from coinpurse.idempotency import StoredResponse
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
    err_cls = REJECTIONS[rejection.code]
    extra: dict[str, Any] = {}
    if rejection.posting_index is not None:
        extra["posting_index"] = rejection.posting_index
    err = err_cls(rejection.detail, **extra)
    return StoredResponse(err.status, err.problem_bytes())


def render_one(
    view: Callable[[Transaction], dict[str, Any]],
) -> Callable[[list[Outcome]], StoredResponse]:
    """Renderer for a request that posts a single transaction: 201, or its problem."""

    def render(outcomes: list[Outcome]) -> StoredResponse:
        (outcome,) = outcomes
        if isinstance(outcome, Rejection):
            return rejection_problem(outcome)
        assert isinstance(outcome, Transaction)
        return StoredResponse(201, orjson.dumps(view(outcome)))

    return render


def wallet_view(user_id: str, currency: str) -> Callable[[Transaction], dict[str, Any]]:
    """A credit or debit: the transaction plus the user's wallet after it."""

    def view(tx: Transaction) -> dict[str, Any]:
        body = transaction_view(tx)
        wallet = tx.balances_after[(f"user:{user_id}", currency)]
        body.update(
            user_id=user_id,
            currency=currency,
            amount=tx.spec.postings[0].amount,
            balance_after=wallet.balance,
            wallet=wallet.as_dict(),
        )
        return body

    return view


def render_batch(body: Any) -> Callable[[list[Outcome]], StoredResponse]:
    """A batch: one slim result per transfer, in order (full views would be megabytes)."""

    def render(outcomes: list[Outcome]) -> StoredResponse:
        results: list[dict[str, Any]] = []
        for i, (transfer, outcome) in enumerate(zip(body.transfers, outcomes, strict=True)):
            if isinstance(outcome, Rejection):
                results.append({"index": i, "status": "rejected",
                                "reference_id": transfer.reference_id, "code": outcome.code,
                                "detail": outcome.detail})
            else:
                assert isinstance(outcome, Transaction)
                results.append({"index": i, "status": "posted",
                                "reference_id": transfer.reference_id, "id": outcome.id})
        posted = sum(r["status"] == "posted" for r in results)
        return StoredResponse(200, orjson.dumps({
            "atomic": body.atomic, "posted": posted, "rejected": len(results) - posted,
            "results": results,
        }))

    return render
