"""An order's money: its credit, exactly once, and its reversal (refund or lost dispute)
that takes back what it can and records the rest as a debt.

An order's state changes in the same commit as the money movement it stands for, under a
ledger idempotency claim named after the order (``payments``/``credit:<order>``,
``payments``/``reverse:<order>``): the client's verify call, a webhook and its redeliveries
may all race to credit one order, and exactly one commit credits it; the others replay
that commit's answer. The order row, re-read under the batch's locks, is the lasting
record once the claims are purged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from coinpurse.bonuses import service as bonuses
from coinpurse.core import metrics
from coinpurse.core.clock import utcnow
from coinpurse.events.service import event_write
from coinpurse.ledger.errors import IdempotencyKeyInUse
from coinpurse.ledger.idempotency import Claim, StoredResponse, request_hash
from coinpurse.ledger.model import (
    AccountKey,
    AccountState,
    Operation,
    Outcome,
    Posting,
    Rejection,
    Transaction,
    TransactionSpec,
)
from coinpurse.ledger.service import Prepare, RowInserts, SideWrites, SqlWrite
from coinpurse.ledger.views import rejection_problem
from coinpurse.payments import repository as repo
from coinpurse.payments import service
from coinpurse.payments.errors import InvalidSignature, PaymentNotCompleted, ProviderUnavailable
from coinpurse.payments.model import PaymentOrder
from coinpurse.payments.providers.base import ProviderError, SignatureError
from coinpurse.payments.service import NotReady, Payments

log = logging.getLogger("coinpurse.payments")

CLAIM_SCOPE = "payments"
IN_USE_WAIT_S = 10.0


async def confirm(p: Payments, user_id: str, order_id: str,
                  params: Mapping[str, Any]) -> PaymentOrder:
    """The client reports a payment: the provider confirms it (a signature from the
    checkout, or the provider asked), then the order is credited."""
    order = await service.own_order(p.db, user_id, order_id)
    if order.transaction_id is not None:
        return order
    if order.provider_order_id is None:
        raise PaymentNotCompleted("this order has no checkout yet")
    provider = p.provider(order.provider)
    kind, started = f"{order.provider}.confirm", time.perf_counter()
    try:
        confirmation = await provider.confirm(order.id, order.provider_order_id, params)
    except SignatureError as exc:  # the adapters' own words, never the SDK's
        raise InvalidSignature(str(exc)) from None
    except ProviderError as exc:  # the provider's words go to the log, not the user
        metrics.record_delivery(kind, "failed", time.perf_counter() - started)
        log.warning("confirming order %s failed: %s", order.id, exc)
        raise ProviderUnavailable(f"{order.provider} could not be reached to confirm the "
                                  "payment; retry") from None
    metrics.record_delivery(kind, "ok", time.perf_counter() - started)
    if confirmation is None:
        raise PaymentNotCompleted(f"{order.provider} does not report this order as paid")
    return await credit(p, order.id, payment_id=confirmation.provider_payment_id,
                        amount=confirmation.amount, currency=confirmation.currency)


def _render(outcomes: list[Outcome]) -> StoredResponse:
    for o in outcomes:
        if isinstance(o, Rejection):
            return rejection_problem(o)
    tx = next((o.id for o in outcomes if isinstance(o, Transaction)), None)
    return StoredResponse(200, orjson.dumps({"transaction_id": tx}))


async def _submit(p: Payments, order_id: str, spec: TransactionSpec, *, claim: Claim,
                  side_writes: SideWrites, prepare: Prepare,
                  lock_keys: frozenset[AccountKey],
                  done: Callable[[PaymentOrder], bool]) -> None:
    """Submit a claimed job; while another request holds the claim, wait for it."""
    deadline = asyncio.get_running_loop().time() + IN_USE_WAIT_S
    while True:
        try:
            await p.ledger.submit([spec], render=_render, claim=claim,
                                  side_writes=side_writes, prepare=prepare,
                                  lock_keys=lock_keys, atomic=True)
            return
        except IdempotencyKeyInUse:
            # Someone else is applying it right now: wait for their commit.
            if done(await service.read_order(p.db, order_id)):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


def _metadata(order: PaymentOrder, payment_id: str | None) -> dict[str, Any]:
    return {"order_id": order.id, "provider": order.provider, "package_id": order.package_id,
            "provider_payment_id": payment_id,
            "price": {"amount": order.price.amount, "currency": order.price.currency}}


# ---------------------------------------------------------------- credit


async def credit(p: Payments, order_id: str, *, payment_id: str | None,
                 amount: int | None = None, currency: str | None = None) -> PaymentOrder:
    """Credit a paid order exactly once; repay the user's debts from it first."""
    order = await service.read_order(p.db, order_id)
    price = order.price
    if amount is not None and (amount != price.amount
                               or (currency or "").lower() != price.currency):
        raise PaymentNotCompleted(
            f"the provider reports {amount} {currency}, the order costs {price.amount} "
            f"{price.currency}; not credited", reason="amount_mismatch")
    if order.transaction_id is not None:
        return order
    spec = _credit_spec(order, payment_id, p.settings.promotions_address)
    async with p.db.connect() as conn:
        creditors = set(await service.outstanding(conn, order.user_id, order.currency))
    bonus = await bonuses.TopupBonuses.plan(p.db, p.bonus, user_id=order.user_id,
                                            currency=order.currency, deposit=order.amount,
                                            order_id=order.id)
    claim = Claim(CLAIM_SCOPE, f"credit:{order.id}", request_hash("credit", order.id))
    await _submit(p, order.id, spec, claim=claim,
                  side_writes=_credit_writes(order, payment_id, bonus),
                  prepare=_credit_prepare(order, spec, bonus),
                  lock_keys=frozenset((c, order.currency) for c in creditors) | bonus.lock_keys,
                  done=lambda o: o.transaction_id is not None)
    return await service.read_order(p.db, order.id)


def _credit_spec(order: PaymentOrder, payment_id: str | None,
                 promotions: str) -> TransactionSpec:
    user, cur = f"user:{order.user_id}", order.currency
    postings = [Posting(f"provider:{order.provider}", user, order.amount, cur)]
    if order.bonus:
        postings.append(Posting(promotions, user, order.bonus, cur))
    return TransactionSpec(
        kind="topup", postings=tuple(postings), description=f"Top-up: {service.describe(order)}",
        reference_id=order.id, initiator=f"provider:{order.provider}",
        metadata=_metadata(order, payment_id), service="payments")


def _credit_prepare(order: PaymentOrder, spec: TransactionSpec,
                    bonus: bonuses.TopupBonuses) -> Prepare:
    """Under the batch's locks: nothing if already credited; else the credit, with the
    user's debts repaid from it (creditors whose accounts this job locked), and the bonuses
    it earns (deposit matches, a referral's rewards) in the same commit."""
    user, cur = f"user:{order.user_id}", order.currency

    async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> list[Operation]:
        if await repo.is_credited(conn, order.id):
            return []  # credited by a commit whose claim has since been purged
        owed = await service.outstanding(conn, order.user_id, cur, pending)
        left, repay = order.total, []
        for creditor in sorted(owed):
            take = min(owed[creditor], left)
            if take > 0 and (creditor, cur) in states:  # a newer debt waits for the next one
                repay.append(Posting(user, creditor, take, cur))
                left -= take
        credit = spec if not repay else dataclasses.replace(
            spec, postings=spec.postings + tuple(repay),
            metadata={**spec.metadata, "debt_repaid": order.total - left})
        return [credit, *await bonus.decide(conn, states, pending)]

    return prepare


def _credit_writes(order: PaymentOrder, payment_id: str | None,
                   bonus: bonuses.TopupBonuses) -> SideWrites:
    """The order marked paid, the debts repaid and the bonuses granted, in the credit's
    commit; or the refusal noted on the order."""
    user = f"user:{order.user_id}"

    def writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        if not outcomes:
            return []
        outcome = outcomes[0]  # the credit; then its bonuses' grants
        if not isinstance(outcome, Transaction):
            assert isinstance(outcome, Rejection)
            return [repo.order_write(order.id, error=f"credit refused: {outcome.code}: "
                                     f"{outcome.detail}"[:500])]
        now = outcome.created_at
        repaid = [{"user_id": order.user_id, "currency": order.currency,
                   "creditor": q.destination, "amount": -q.amount, "order_id": order.id,
                   "transaction_id": outcome.id, "created_at": now}
                  for q in outcome.spec.postings if q.source == user]
        return [repo.debt_rows(repaid),
                repo.order_write(order.id, status="succeeded", credit_transaction_id=outcome.id,
                                 provider_payment_id=payment_id or order.provider_payment_id,
                                 paid_at=now, error=None),
                event_write("topup.succeeded", order.event_data(
                    status="succeeded", transaction_id=outcome.id)),
                *bonus.writes(outcomes)]

    return writes


# ---------------------------------------------------------------- reversal


async def reverse(p: Payments, order_id: str, status: str) -> PaymentOrder:
    """A refund or a lost dispute: take back what is available now, the rest becomes a
    debt. Decided under the user's account lock, once per order whatever the cause."""
    order = await service.read_order(p.db, order_id)
    if order.transaction_id is None:
        raise NotReady("the order has not been credited yet")
    if order.reversed_at is not None:
        return order
    user, cur = f"user:{order.user_id}", order.currency
    promo = p.settings.promotions_address
    kind = "refund" if status == "refunded" else "chargeback"
    spec = TransactionSpec(
        kind=kind, postings=tuple(
            q for q in (Posting(user, f"provider:{order.provider}", order.amount, cur),
                        Posting(user, promo, order.bonus, cur)) if q.amount > 0),
        description="Top-up refunded" if kind == "refund" else "Top-up charged back",
        reference_id=order.id, initiator=f"provider:{order.provider}",
        metadata=_metadata(order, order.provider_payment_id), service="payments")
    skipped: list[bool] = []
    claim = Claim(CLAIM_SCOPE, f"reverse:{order.id}", request_hash("reverse", order.id))
    await _submit(p, order.id, spec, claim=claim,
                  side_writes=_reversal_writes(order, status, promo, skipped),
                  prepare=_reversal_prepare(order, spec, promo, skipped),
                  lock_keys=frozenset({(user, cur)}),
                  done=lambda o: o.reversed_at is not None)
    return await service.read_order(p.db, order.id)


def _reversal_prepare(order: PaymentOrder, spec: TransactionSpec, promo: str,
                      skipped: list[bool]) -> Prepare:
    """Under the user's lock: take back what is available, the amount before the bonus."""
    user, cur = f"user:{order.user_id}", order.currency

    async def prepare(conn: AsyncConnection, states: Mapping[AccountKey, AccountState],
                      pending: Sequence[RowInserts]) -> list[Operation]:
        if await repo.is_reversed(conn, order.id):
            skipped.append(True)
            return []
        take = min(max(states[(user, cur)].available, 0), order.total)
        to_provider = min(take, order.amount)
        legs = [q for q in (Posting(user, f"provider:{order.provider}", to_provider, cur),
                            Posting(user, promo, take - to_provider, cur)) if q.amount > 0]
        return [dataclasses.replace(spec, postings=tuple(legs))] if legs else []

    return prepare


def _reversal_writes(order: PaymentOrder, status: str, promo: str,
                     skipped: list[bool]) -> SideWrites:
    """The order marked reversed, and what could not be taken back owed as debts."""
    provider_account = f"provider:{order.provider}"

    def writes(outcomes: list[Outcome]) -> list[RowInserts | SqlWrite]:
        tx = next((o for o in outcomes if isinstance(o, Transaction)), None)
        if skipped or any(isinstance(o, Rejection) for o in outcomes):
            return []
        now = utcnow()
        taken = {q.destination: q.amount for q in (tx.spec.postings if tx else ())}
        owed = {provider_account: order.amount - taken.get(provider_account, 0),
                promo: order.bonus - taken.get(promo, 0)}
        debts = [{"user_id": order.user_id, "currency": order.currency, "creditor": c,
                  "amount": a, "order_id": order.id, "transaction_id": tx.id if tx else None,
                  "created_at": now} for c, a in owed.items() if a > 0]
        return [repo.debt_rows(debts),
                repo.order_write(order.id, status=status,
                                 reversal_transaction_id=tx.id if tx else None,
                                 reversed_amount=sum(taken.values()),
                                 debt_amount=sum(owed.values()), reversed_at=now),
                event_write("topup.refunded", order.event_data(
                    status=status, reason="refund" if status == "refunded" else "dispute_lost",
                    reversal_transaction_id=tx.id if tx else None,
                    reversed_amount=sum(taken.values()), debt_amount=sum(owed.values())))]

    return writes
