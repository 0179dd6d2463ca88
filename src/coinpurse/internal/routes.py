"""The internal service-to-service API: credit, debit, transfers and audit reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from coinpurse.cluster import reads
from coinpurse.deps import IdempotencyKey, Service, State, problems
from coinpurse.errors import (
    BalanceOverflow,
    CurrencyNotTransferable,
    Forbidden,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientFunds,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    UnknownCurrency,
    ValidationFailed,
)
from coinpurse.idempotency import claim
from coinpurse.internal import schemas as s
from coinpurse.kit import cursor
from coinpurse.kit.http import json_response, raw_json_response
from coinpurse.kit.types import ADDRESS_RE, USER_ID_RE
from coinpurse.ledger import queries
from coinpurse.ledger.model import Posting, TransactionSpec
from coinpurse.ledger.views import render_batch, render_one, transaction_view, wallet_view

router = APIRouter(prefix="/internal/v1", tags=["internal"])

_WRITE_ERRORS = (ValidationFailed, Unauthorized, Forbidden, UnknownCurrency, InsufficientFunds,
                 CurrencyNotTransferable,
                 BalanceOverflow, IdempotencyKeyReused, IdempotencyKeyInUse, PayloadTooLarge,
                 ServiceUnavailable)
_READ_ERRORS = (ValidationFailed, Unauthorized, Forbidden)


async def _post(state: State, spec: TransactionSpec, key: Service, idem: str, op: str,
                payload: object, render: object) -> Response:
    result = await state.ledger.submit(
        [spec], render=render,  # type: ignore[arg-type]
        claim=claim(f"service:{key.service}", idem, op, payload),
    )
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return raw_json_response(result.response.body, result.response.status, headers)


async def _wallet_change(state: State, body: s.WalletChangeIn, key: Service, idem: str,
                         op: str) -> Response:
    currency = state.currency(body.currency)
    key.require(f"wallet:{op}:{currency}")
    service_account = f"service:{key.service}"
    user_account = f"user:{body.user_id}"
    source, destination = ((service_account, user_account) if op == "credit"
                           else (user_account, service_account))
    spec = TransactionSpec(
        kind=op,
        postings=(Posting(source, destination, body.amount, currency),),
        description=body.description,
        reference_id=body.reference_id,
        metadata=body.metadata,
        initiator=service_account,
        service=key.service,
        internal_notes=body.internal_notes,
    )
    return await _post(state, spec, key, idem, op, body.model_dump(mode="json"),
                       render_one(wallet_view(body.user_id, currency)))


@router.post(
    "/wallet/credit", status_code=201, response_model=s.WalletTransactionOut,
    responses=problems(*_WRITE_ERRORS),
    summary="Credit a user's wallet from the calling service's account",
)
async def credit(body: s.WalletChangeIn, state: State, key: Service,
                 idem: IdempotencyKey) -> Response:
    """Moves `amount` from `service:<your service>` to `user:<user_id>`. Scope
    `wallet:credit:<currency>`. A retry with the same `Idempotency-Key` replays the answer
    with `Idempotent-Replayed: true`."""
    return await _wallet_change(state, body, key, idem, "credit")


@router.post(
    "/wallet/debit", status_code=201, response_model=s.WalletTransactionOut,
    responses=problems(*_WRITE_ERRORS),
    summary="Debit a user's wallet back to the calling service's account",
)
async def debit(body: s.WalletChangeIn, state: State, key: Service,
                idem: IdempotencyKey) -> Response:
    """Moves `amount` from `user:<user_id>` to `service:<your service>`. Scope
    `wallet:debit:<currency>`. Refused with `insufficient_funds` (and nothing changes) when
    the amount exceeds the user's available balance."""
    return await _wallet_change(state, body, key, idem, "debit")


@router.post(
    "/transfers", status_code=201, response_model=s.TransactionOut,
    responses=problems(*_WRITE_ERRORS),
    summary="Post one atomic transaction of several postings",
)
async def transfer(body: s.TransferIn, state: State, key: Service,
                   idem: IdempotencyKey) -> Response:
    """All postings apply or none. Scope `transfers:write` (or
    `transfers:write:<currency>` for each currency used). Postings apply in order; a user
    wallet never goes below zero, `world`, `service:*` and `provider:*` accounts may."""
    spec = _transfer_spec(state, key, body)
    return await _post(state, spec, key, idem, "transfer", body.model_dump(mode="json"),
                       render_one(transaction_view))


def _transfer_spec(state: State, key: Service, body: s.TransferIn) -> TransactionSpec:
    for currency in dict.fromkeys(p.currency for p in body.postings):
        state.currency(currency)
        key.require(f"transfers:write:{currency}")
    for i, p in enumerate(body.postings):
        src, dst = _user_of(p.source), _user_of(p.destination)
        if (src and dst and src != dst
                and p.currency not in state.settings.transferable):
            raise CurrencyNotTransferable(
                f"{p.currency} cannot move between two users' wallets (posting {i})",
                posting_index=i,
            )
    return TransactionSpec(
        kind=body.kind,
        postings=tuple(Posting(p.source, p.destination, p.amount, p.currency)
                       for p in body.postings),
        description=body.description,
        reference_id=body.reference_id,
        metadata=body.metadata,
        initiator=f"service:{key.service}",
        service=key.service,
        internal_notes=body.internal_notes,
    )


def _user_of(address: str) -> str | None:
    """The user id of a ``user:<id>[:<wallet>]`` address."""
    parts = address.split(":")
    return parts[1] if parts[0] == "user" and len(parts) > 1 else None


@router.post(
    "/transfers/batch", status_code=200, response_model=s.BatchOut,
    responses=problems(*_WRITE_ERRORS),
    summary="Post up to 1,000 transfers in one call",
)
async def transfer_batch(body: s.BatchIn, state: State, key: Service,
                         idem: IdempotencyKey) -> Response:
    """Each transfer is its own transaction with its own result, in order. A refused one does
    not stop the others unless `atomic` is true, in which case nothing is posted if one is
    refused (the others report `batch_atomic_failed`). The whole call is one idempotent
    request: a retry with the same `Idempotency-Key` replays every result. Bodies up to
    `COINPURSE_BATCH_BODY_MAX_BYTES` (1 MiB)."""
    specs = [_transfer_spec(state, key, t) for t in body.transfers]
    result = await state.ledger.submit(
        specs, atomic=body.atomic, render=render_batch(body),
        claim=claim(f"service:{key.service}", idem, "batch", body.model_dump(mode="json")),
    )
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return raw_json_response(result.response.body, result.response.status, headers)


UserPath = Annotated[str, Path(pattern=USER_ID_RE, description="The user's id.")]
# Printable ASCII: a NUL reached PostgreSQL and failed there as a 500.
TRANSACTION_ID_RE = r"^[\x21-\x7e]{1,64}$"


@router.get("/wallet/balance/{user_id}", response_model=s.WalletsOut,
            responses=problems(*_READ_ERRORS), summary="A user's balances in every currency")
async def balance(user_id: UserPath, state: State, key: Service) -> Response:
    key.require("wallet:read")
    async with state.db.connect() as conn:
        found = await queries.balances(conn, f"user:{user_id}", state.settings.currency_map)
    return json_response(
        {"user_id": user_id, "wallets": {c: b.as_dict() for c, b in found.items()}}
    )


@router.get("/accounts/{address}", response_model=s.AccountOut,
            responses=problems(*_READ_ERRORS),
            summary="Balances of any address, system accounts included")
async def account(
    address: Annotated[str, Path(pattern=ADDRESS_RE, max_length=255)], state: State,
    key: Service,
) -> Response:
    """Every configured currency, zero where the account has never been used."""
    key.require("wallet:read")
    async with state.db.connect() as conn:
        found = await queries.balances(conn, address, state.settings.currency_map)
    return json_response(
        {"address": address, "balances": {c: b.as_dict() for c, b in found.items()}}
    )


@router.get("/transactions/{transaction_id}", response_model=s.TransactionAuditOut,
            responses=problems(*_READ_ERRORS, NotFound),
            summary="One transaction, with its postings, entries and internal notes")
async def get_transaction(
    transaction_id: Annotated[str, Path(max_length=64, pattern=TRANSACTION_ID_RE)], state: State,
    key: Service,
) -> Response:
    key.require("wallet:read")
    async with state.db.connect() as conn:
        found = await queries.transaction(conn, transaction_id)
    if found is None:
        raise NotFound(f"no transaction {transaction_id!r}")
    return json_response(found)


@router.get("/wallet/transactions/{user_id}", response_model=s.AuditHistoryPage,
            responses=problems(*_READ_ERRORS, UnknownCurrency),
            summary="The audit view of a user's history")
async def user_history(
    user_id: UserPath,
    state: State,
    key: Service,
    currency: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.PAGE_MAX)] = 50,
    cursor_: Annotated[str | None, Query(alias="cursor", max_length=64)] = None,
) -> Response:
    """Newest first, with the service that made each transaction and its internal notes."""
    key.require("wallet:read")
    return await history_page(state, user_id, currency, limit, cursor_, audit=True)


async def history_page(state: State, user_id: str, currency: str | None, limit: int,
                       cursor_text: str | None, *, audit: bool) -> Response:
    if currency is not None:
        state.currency(currency)
    before = cursor.decode(cursor_text)
    # From a standby when one is configured and up to date for this wallet.
    async with reads.for_wallet(state.db, state.read_db, f"user:{user_id}") as conn:
        rows, next_id = await queries.entries_page(
            conn, f"user:{user_id}", currency=currency, before_id=before, limit=limit
        )
    return json_response({
        "data": [queries.entry_view(r, audit=audit) for r in rows],
        "next_cursor": cursor.encode(next_id) if next_id is not None else None,
    })
