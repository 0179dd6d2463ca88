"""Every operation once: its parameters, its route (method and path) and its answer's type.

The sync and async clients wrap these functions, so each signature and docstring is written
here only. Operations are addressed by method and path, never by OpenAPI operationId.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Literal

from pydantic import TypeAdapter

from coinpurse_client._call import Call, body, new_key, params, path
from coinpurse_client.models import (
    Account,
    Agency,
    AuditHistoryEntry,
    BatchOutcome,
    Gift,
    GiftType,
    HistoryEntry,
    Hold,
    KycStatus,
    KycSubmission,
    Me,
    Packages,
    Page,
    Posting,
    SentGift,
    TopupOrder,
    Transaction,
    TransactionAudit,
    TransferRequest,
    WalletDebit,
    Wallets,
    WalletTransaction,
    Withdrawal,
)

INTERNAL = "/internal/v1"
USER = "/api/v1"

_gift_types = TypeAdapter(list[GiftType])


def _posting(p: Posting | Mapping[str, Any]) -> dict[str, Any]:
    return p.model_dump(mode="json") if isinstance(p, Posting) else dict(p)


# Internal service API (X-API-Key)


def _wallet_change(
    op: str, user_id: str, currency: str, amount: int, description: str, reference_id: str,
    metadata: Mapping[str, Any] | None, internal_notes: str | None, idempotency_key: str | None,
) -> Call[WalletTransaction]:
    return Call(
        "POST", f"{INTERNAL}/wallet/{op}", WalletTransaction.model_validate,
        json=body(user_id=user_id, currency=currency, amount=amount, description=description,
                  reference_id=reference_id,
                  metadata=dict(metadata) if metadata is not None else None,
                  internal_notes=internal_notes),
        idempotency_key=new_key(idempotency_key),
    )


def credit(
    *, user_id: str, currency: str, amount: int, description: str, reference_id: str,
    metadata: Mapping[str, Any] | None = None, internal_notes: str | None = None,
    idempotency_key: str | None = None,
) -> Call[WalletTransaction]:
    """Move ``amount`` from your service's account to the user's wallet.

    ``description`` is shown to the user; ``internal_notes`` never is. Without
    ``idempotency_key`` a fresh one is made; it is reused on every retry of this call."""
    return _wallet_change("credit", user_id, currency, amount, description, reference_id,
                          metadata, internal_notes, idempotency_key)


def debit(
    *, user_id: str, currency: str, amount: int, description: str, reference_id: str,
    metadata: Mapping[str, Any] | None = None, internal_notes: str | None = None,
    idempotency_key: str | None = None, use_bonus: bool | None = None,
    category: str | None = None,
) -> Call[WalletDebit]:
    """Move ``amount`` from the user's wallet back to your service's account.

    A user with bonus money pays from cash and bonus (``from_cash``, ``from_bonus``);
    ``use_bonus=False`` pays from cash only. ``category`` counts the amount as wagering.
    Raises ``InsufficientFunds`` (nothing changed) when what may pay falls short."""
    return Call(
        "POST", f"{INTERNAL}/wallet/debit", WalletDebit.model_validate,
        json=body(user_id=user_id, currency=currency, amount=amount, description=description,
                  reference_id=reference_id,
                  metadata=dict(metadata) if metadata is not None else None,
                  internal_notes=internal_notes, use_bonus=use_bonus, category=category),
        idempotency_key=new_key(idempotency_key),
    )


def transfer(
    *, postings: Sequence[Posting | Mapping[str, Any]], description: str, reference_id: str,
    kind: str = "transfer", metadata: Mapping[str, Any] | None = None,
    internal_notes: str | None = None, idempotency_key: str | None = None,
) -> Call[Transaction]:
    """One atomic transaction of up to 64 postings between any addresses: all or none."""
    return Call(
        "POST", f"{INTERNAL}/transfers", Transaction.model_validate,
        json=body(postings=[_posting(p) for p in postings], kind=kind,
                  description=description, reference_id=reference_id,
                  metadata=dict(metadata) if metadata is not None else None,
                  internal_notes=internal_notes),
        idempotency_key=new_key(idempotency_key),
    )


def transfer_batch(
    transfers: Sequence[TransferRequest | Mapping[str, Any]], *, atomic: bool = False,
    idempotency_key: str | None = None,
) -> Call[BatchOutcome]:
    """Up to 1,000 transfers in one call and one idempotency key; one result each, in order.

    With ``atomic=True`` one refusal posts nothing. Refusals are results, not exceptions."""
    items = [TransferRequest.model_validate(t).model_dump(mode="json", exclude_none=True)
             for t in transfers]
    return Call("POST", f"{INTERNAL}/transfers/batch", BatchOutcome.model_validate,
                json={"transfers": items, "atomic": atomic},
                idempotency_key=new_key(idempotency_key))


def balance(user_id: str) -> Call[Wallets]:
    """The user's balances in every configured currency."""
    return Call("GET", path(INTERNAL + "/wallet/balance/{u}", u=user_id),
                Wallets.model_validate)


def account(address: str) -> Call[Account]:
    """Balances of any address (``service:games``, ``platform:fees``, ...)."""
    return Call("GET", path(INTERNAL + "/accounts/{a}", a=address), Account.model_validate)


def get_transaction(transaction_id: str) -> Call[TransactionAudit]:
    """One transaction with its postings, entries and internal notes."""
    return Call("GET", path(INTERNAL + "/transactions/{t}", t=transaction_id),
                TransactionAudit.model_validate)


def user_transactions(
    user_id: str, *, currency: str | None = None, limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[AuditHistoryEntry]]:
    """One page of the user's history (audit view: service and internal notes), newest first."""
    return Call("GET", path(INTERNAL + "/wallet/transactions/{u}", u=user_id),
                Page[AuditHistoryEntry].model_validate,
                params=params(currency=currency, limit=limit, cursor=cursor))


def place_hold(
    *, user_id: str, currency: str, amount: int, description: str, reference_id: str,
    destination: str | None = None, expires_in_s: int | None = None, kind: str | None = None,
    metadata: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
) -> Call[Hold]:
    """Reserve ``amount`` of the user's available balance until captured, voided or expired."""
    return Call(
        "POST", f"{INTERNAL}/holds", Hold.model_validate,
        json=body(user_id=user_id, currency=currency, amount=amount, description=description,
                  reference_id=reference_id, destination=destination,
                  expires_in_s=expires_in_s, kind=kind,
                  metadata=dict(metadata) if metadata is not None else None),
        idempotency_key=new_key(idempotency_key),
    )


def capture_hold(hold_id: str, *, amount: int | None = None,
                 idempotency_key: str | None = None) -> Call[Hold]:
    """Move ``amount`` (default: all) of the hold to its destination; release the rest."""
    return Call("POST", path(INTERNAL + "/holds/{h}/capture", h=hold_id), Hold.model_validate,
                json=body(amount=amount), idempotency_key=new_key(idempotency_key))


def void_hold(hold_id: str, *, idempotency_key: str | None = None) -> Call[Hold]:
    """Release the whole hold."""
    return Call("POST", path(INTERNAL + "/holds/{h}/void", h=hold_id), Hold.model_validate,
                idempotency_key=new_key(idempotency_key))


def get_hold(hold_id: str) -> Call[Hold]:
    return Call("GET", path(INTERNAL + "/holds/{h}", h=hold_id), Hold.model_validate)


def set_agency(user_id: str, agency_id: str | None) -> Call[Agency]:
    """Set the user's agency (its commission on gifts the user receives), or clear it."""
    return Call("PUT", path(INTERNAL + "/users/{u}/agency", u=user_id), Agency.model_validate,
                json={"agency_id": agency_id})


def get_agency(user_id: str) -> Call[Agency]:
    return Call("GET", path(INTERNAL + "/users/{u}/agency", u=user_id), Agency.model_validate)


# User API (Bearer token)


def my_balance() -> Call[Wallets]:
    """The caller's wallets."""
    return Call("GET", f"{USER}/wallet/balance", Wallets.model_validate)


def my_transactions(*, currency: str | None = None, limit: int | None = None,
                    cursor: str | None = None) -> Call[Page[HistoryEntry]]:
    """One page of the caller's history, newest first."""
    return Call("GET", f"{USER}/wallet/transactions", Page[HistoryEntry].model_validate,
                params=params(currency=currency, limit=limit, cursor=cursor))


def gift_catalog() -> Call[list[GiftType]]:
    """The gift types, with their price and currency."""
    return Call("GET", f"{USER}/gifts/catalog",
                lambda data: _gift_types.validate_python(data["data"]))


def send_gift(
    *, to_user_id: str, gift_type: str | None = None, amount: int | None = None,
    currency: str | None = None, message: str | None = None, context_id: str | None = None,
    idempotency_key: str | None = None,
) -> Call[SentGift]:
    """Send a catalog gift (``gift_type``) or an ``amount`` of a ``currency``."""
    return Call("POST", f"{USER}/gifts", SentGift.model_validate,
                json=body(to_user_id=to_user_id, gift_type=gift_type, amount=amount,
                          currency=currency, message=message, context_id=context_id),
                idempotency_key=new_key(idempotency_key))


def my_gifts(*, direction: Literal["sent", "received"] = "sent", limit: int | None = None,
             cursor: str | None = None) -> Call[Page[Gift]]:
    return Call("GET", f"{USER}/gifts", Page[Gift].model_validate,
                params=params(direction=direction, limit=limit, cursor=cursor))


def topup_packages() -> Call[Packages]:
    """What can be bought: packages, per-amount rates, enabled providers."""
    return Call("GET", f"{USER}/topup/packages", Packages.model_validate)


def create_topup(
    *, package_id: str | None = None, amount: int | None = None, currency: str | None = None,
    provider: str = "mock", idempotency_key: str | None = None,
) -> Call[TopupOrder]:
    """Start a top-up: a package, or an amount of a currency. Send the user to
    ``checkout_url`` (or use ``client_params``); the coins arrive when the provider confirms."""
    return Call("POST", f"{USER}/topups", TopupOrder.model_validate,
                json=body(package_id=package_id, amount=amount, currency=currency,
                          provider=provider),
                idempotency_key=new_key(idempotency_key))


def my_topups(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[TopupOrder]]:
    return Call("GET", f"{USER}/topups", Page[TopupOrder].model_validate,
                params=params(limit=limit, cursor=cursor))


def get_topup(order_id: str) -> Call[TopupOrder]:
    return Call("GET", path(USER + "/topups/{o}", o=order_id), TopupOrder.model_validate)


def verify_topup(order_id: str, **proof: str) -> Call[TopupOrder]:
    """Confirm a payment with what the checkout returned (mock: ``payment_id``,
    ``signature``; razorpay: ``razorpay_order_id``, ``razorpay_payment_id``,
    ``razorpay_signature``; stripe: nothing). Safe to repeat: it credits once."""
    return Call("POST", path(USER + "/topups/{o}/verify", o=order_id),
                TopupOrder.model_validate, json=dict(proof))


def request_withdrawal(
    *, currency: str, amount: int, destination: Mapping[str, Any],
    idempotency_key: str | None = None,
) -> Call[Withdrawal]:
    """Hold ``amount`` and ask for a payout to ``destination`` (opaque payout details)."""
    return Call("POST", f"{USER}/withdrawals", Withdrawal.model_validate,
                json={"currency": currency, "amount": amount,
                      "destination": dict(destination)},
                idempotency_key=new_key(idempotency_key))


def my_withdrawals(*, limit: int | None = None,
                   cursor: str | None = None) -> Call[Page[Withdrawal]]:
    return Call("GET", f"{USER}/withdrawals", Page[Withdrawal].model_validate,
                params=params(limit=limit, cursor=cursor))


def get_withdrawal(withdrawal_id: str) -> Call[Withdrawal]:
    return Call("GET", path(USER + "/withdrawals/{w}", w=withdrawal_id),
                Withdrawal.model_validate)


def cancel_withdrawal(withdrawal_id: str) -> Call[Withdrawal]:
    """Cancel a pending withdrawal and release its hold (``WithdrawalNotPending`` once an
    operator decided it). Cancelling twice answers the cancelled withdrawal again."""
    return Call("POST", path(USER + "/withdrawals/{w}/cancel", w=withdrawal_id),
                Withdrawal.model_validate)


def kyc_status() -> Call[KycStatus]:
    """The caller's verification tier, its limits, the next tier and the latest submission."""
    return Call("GET", f"{USER}/kyc", KycStatus.model_validate)


def submit_kyc(
    *, tier: int, full_name: str | None = None, date_of_birth: date | None = None,
    country: str | None = None, id_document_ref: str | None = None,
    selfie_ref: str | None = None,
) -> Call[KycSubmission]:
    """Ask for a higher tier; documents are references to files stored elsewhere."""
    return Call("POST", f"{USER}/kyc", KycSubmission.model_validate,
                json=body(tier=tier, full_name=full_name,
                          date_of_birth=date_of_birth.isoformat() if date_of_birth else None,
                          country=country, id_document_ref=id_document_ref,
                          selfie_ref=selfie_ref),
                replay_safe=False)


def me() -> Call[Me]:
    """Who the token speaks for."""
    return Call("GET", f"{USER}/me", Me.model_validate)
