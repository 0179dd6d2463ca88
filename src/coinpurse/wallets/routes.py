"""The wallet API: credit, debit, transfers and audit reads for services (``/internal/v1``),
and a user's own balances and history (``/api/v1``), never anyone else's."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from coinpurse.bonuses.errors import BonusWalletReserved
from coinpurse.core.errors import (
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from coinpurse.core.pages import PAGE_MAX
from coinpurse.core.types import ADDRESS_RE, USER_ID_RE
from coinpurse.http.deps import IdempotencyKey, Service, State, UserId
from coinpurse.http.fastpath import FastRoute
from coinpurse.http.responses import model_response, problems, replay_response
from coinpurse.ledger.errors import (
    BalanceOverflow,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InsufficientFunds,
    UnknownCurrency,
)
from coinpurse.wallets import schemas as s
from coinpurse.wallets.errors import CurrencyNotTransferable
from coinpurse.wallets.service import Wallets

router = APIRouter(prefix="/internal/v1", tags=["internal"])
user_router = APIRouter(prefix="/api/v1", tags=["user"])

_WRITE_ERRORS = (ValidationFailed, Unauthorized, Forbidden, UnknownCurrency, InsufficientFunds,
                 CurrencyNotTransferable, BonusWalletReserved,
                 BalanceOverflow, IdempotencyKeyReused, IdempotencyKeyInUse, PayloadTooLarge,
                 ServiceUnavailable)
_READ_ERRORS = (ValidationFailed, Unauthorized, Forbidden)

UserPath = Annotated[str, Path(pattern=USER_ID_RE, description="The user's id.")]
# Printable ASCII: a NUL reached PostgreSQL and failed there as a 500.
TRANSACTION_ID_RE = r"^[\x21-\x7e]{1,64}$"
Currency = Annotated[str | None, Query(max_length=16)]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX)]


def _wallets(state: State) -> Wallets:
    return Wallets(state.db, state.ledger, state.settings, state.settings, state.reads)


async def _change(state: State, body: s.WalletChangeIn, key: Service, idem: str,
                  op: Literal["credit", "debit"]) -> Response:
    currency = state.settings.currency(body.currency)
    key.require(f"wallet:{op}:{currency}")
    return replay_response(await _wallets(state).change(key.service, body, idem, op))


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
    return await _change(state, body, key, idem, "credit")


@router.post(
    "/wallet/debit", status_code=201, response_model=s.WalletDebitOut,
    responses=problems(*_WRITE_ERRORS),
    summary="Debit a user's wallet back to the calling service's account",
)
async def debit(body: s.WalletDebitIn, state: State, key: Service,
                idem: IdempotencyKey) -> Response:
    """Moves `amount` from the user to `service:<your service>`. Scope
    `wallet:debit:<currency>`. A user with active bonuses pays from the cash wallet and the
    bonus wallet, cash first or bonus first as the currency is configured
    (`COINPURSE_BONUS_SPEND_ORDER`); `"use_bonus": false` pays from cash only. The answer
    says how much came from each (`from_cash`, `from_bonus`). With a `category`, the amount
    counts as wagering toward the user's bonuses; a bonus it completes converts in the same
    commit (`bonus_conversions`). Refused with `insufficient_funds` (and nothing changes)
    when cash and usable bonus together fall short."""
    return await _change(state, body, key, idem, "debit")


def _authorize_transfer(state: State, key: Service, body: s.TransferIn) -> None:
    for currency in dict.fromkeys(p.currency for p in body.postings):
        state.settings.currency(currency)
        key.require(f"transfers:write:{currency}")


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
    _authorize_transfer(state, key, body)
    return replay_response(await _wallets(state).transfer(key.service, body, idem))


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
    for t in body.transfers:
        _authorize_transfer(state, key, t)
    return replay_response(await _wallets(state).transfer_batch(key.service, body, idem))


@router.get("/wallet/balance/{user_id}", response_model=s.WalletsOut,
            responses=problems(*_READ_ERRORS), summary="A user's balances in every currency")
async def balance(user_id: UserPath, state: State, key: Service) -> Response:
    """Every configured currency of `user:<user_id>` (zero where the user has no account yet):
    `balance`, `held` and `available`. Scope `wallet:read`."""
    key.require("wallet:read")
    found, bonus = await _wallets(state).user_balances(user_id)
    return model_response(s.WalletsOut.of(user_id, found, bonus))


@router.get("/accounts/{address}", response_model=s.AccountOut,
            responses=problems(*_READ_ERRORS),
            summary="Balances of any address, system accounts included")
async def account(
    address: Annotated[str, Path(pattern=ADDRESS_RE, max_length=255)], state: State,
    key: Service,
) -> Response:
    """Every configured currency, zero where the account has never been used."""
    key.require("wallet:read")
    found = await _wallets(state).balances(address)
    return model_response(s.AccountOut.of(address, found))


@router.get("/transactions/{transaction_id}", response_model=s.TransactionAuditOut,
            responses=problems(*_READ_ERRORS, NotFound),
            summary="One transaction, with its postings, entries and internal notes")
async def get_transaction(
    transaction_id: Annotated[str, Path(max_length=64, pattern=TRANSACTION_ID_RE)], state: State,
    key: Service,
) -> Response:
    """The audit view of one transaction: its postings, one entry per account touched with the
    balance after it, the service that made it and its internal notes. Scope `wallet:read`."""
    key.require("wallet:read")
    found = await _wallets(state).transaction(transaction_id)
    if found is None:
        raise NotFound(f"no transaction {transaction_id!r}")
    return model_response(s.TransactionAuditOut.of(found))


@router.get("/wallet/transactions/{user_id}", response_model=s.AuditHistoryPage,
            responses=problems(*_READ_ERRORS, UnknownCurrency),
            summary="The audit view of a user's history")
async def user_history(
    user_id: UserPath, state: State, key: Service, currency: Currency = None,
    limit: Limit = 50,
    cursor_: Annotated[str | None, Query(alias="cursor", max_length=64)] = None,
) -> Response:
    """Newest first, with the service that made each transaction and its internal notes."""
    key.require("wallet:read")
    page = await _wallets(state).history(user_id, currency=currency, limit=limit,
                                         cursor_text=cursor_)
    return model_response(s.AuditHistoryPage.of(page))


@user_router.get("/currencies", response_model=s.CurrencyList, responses=problems(Unauthorized),
                 summary="Currencies and their scales")
async def currencies(user_id: UserId, state: State) -> Response:
    """So a client can show `150` of a scale-2 currency as `1.50` without knowing the
    server's configuration."""
    return model_response(s.CurrencyList.of(_wallets(state).currencies(),
                                            giftable=state.settings.giftable,
                                            sellable=state.settings.sellable))


@user_router.get("/wallet/balance", response_model=s.WalletsOut,
                 responses=problems(Unauthorized), summary="The caller's balances")
async def my_balance(user_id: UserId, state: State) -> Response:
    """`balance` is what was posted, `held` what open holds reserve, `available` the rest;
    `bonus` is the bonus wallet (see `GET /api/v1/bonuses` for each bonus's progress)."""
    found, bonus = await _wallets(state).user_balances(user_id)
    return model_response(s.WalletsOut.of(user_id, found, bonus))


@user_router.get("/wallet/transactions", response_model=s.HistoryPage,
                 responses=problems(Unauthorized, ValidationFailed, UnknownCurrency),
                 summary="The caller's history, newest first")
async def my_history(
    user_id: UserId, state: State, currency: Currency = None, limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Pass `next_cursor` back as `cursor` for the next page; it is null on the last one."""
    page = await _wallets(state).history(user_id, currency=currency, limit=limit,
                                         cursor_text=cursor)
    return model_response(s.HistoryPage.of(page))


# The hot routes, also served by http.fastpath without FastAPI's per-request machinery (the
# same endpoints above, the same dependency functions; issue 16). Mounted by app.py.
fast_routes = (
    FastRoute.of("POST", "/internal/v1/wallet/credit", credit),
    FastRoute.of("POST", "/internal/v1/wallet/debit", debit),
    FastRoute.of("POST", "/internal/v1/transfers", transfer),
    FastRoute.of("POST", "/internal/v1/transfers/batch", transfer_batch),
    FastRoute.of("GET", "/internal/v1/wallet/balance/{user_id}", balance),
    FastRoute.of("GET", "/internal/v1/wallet/transactions/{user_id}", user_history,
                 query={"currency": "currency", "limit": "limit", "cursor": "cursor_"}),
    FastRoute.of("GET", "/api/v1/wallet/balance", my_balance),
    FastRoute.of("GET", "/api/v1/wallet/transactions", my_history,
                 query={"currency": "currency", "limit": "limit", "cursor": "cursor"}),
)
