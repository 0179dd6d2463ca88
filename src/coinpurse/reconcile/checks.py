"""The checks themselves, over rows already read: pure functions, no database.

Each returns the discrepancies it finds, each naming the account, entry, transaction, order
or withdrawal, with the expected and the actual value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from coinpurse.payments.model import CREDITED
from coinpurse.reconcile.canonical import EntryRow, TxRow
from coinpurse.reconcile.model import (
    AccountState,
    Discrepancy,
    LedgerEntry,
    LinkedTx,
    Mark,
    OrderRow,
    Seal,
    ShopOrderRow,
    ShopRefundRow,
    WithdrawalRow,
)
from coinpurse.shop.service import SERVICE as SHOP_SERVICE

Leg = tuple[int, str, str, int]  # (posting index, address, currency, signed amount)


def account_name(a: AccountState) -> str:
    return f"{a.address} ({a.currency})"


# --- accounts -----------------------------------------------------------------------------------


def check_account(a: AccountState, new_entries: Sequence[LedgerEntry], held: int, *,
                  from_mark: bool, archived: int = 0) -> tuple[list[Discrepancy], Mark]:
    """An account's balance, its balance_after chain and its holds. ``from_mark``: the
    entries are those after the account's mark, which the last clean run checked; else
    all its entries still in the tables, after ``archived`` (the total of its entries in
    archived months, where its balance_after chain resumes)."""
    found: list[Discrepancy] = []
    name = account_name(a)
    start = a.mark_balance if from_mark and a.mark_balance is not None else archived
    last_id = (a.mark_last_entry_id or 0) if from_mark else 0
    previous, total = start, start
    for e in new_entries:
        if e.balance_after != previous + e.amount:
            found.append(Discrepancy(
                "balance_after_jump", "entry", str(e.id),
                f"entry {e.id} of {name}: balance_after {e.balance_after}, but the entry "
                f"before it left {previous} and this one moves {e.amount}",
                expected=previous + e.amount, actual=e.balance_after))
        previous = e.balance_after  # go on from what is there: one break, one report
        total += e.amount
        last_id = e.id
    if total != a.balance:
        found.append(Discrepancy(
            "balance_not_sum_of_entries", "account", name,
            f"{name}: balance {a.balance}, its entries sum to {total}",
            expected=total, actual=a.balance))
    if previous != a.balance:
        found.append(Discrepancy(
            "last_balance_after_mismatch", "account", name,
            f"{name}: balance {a.balance}, its newest entry left {previous}",
            expected=previous, actual=a.balance))
    if held != a.held:
        found.append(Discrepancy(
            "held_not_sum_of_holds", "account", name,
            f"{name}: held {a.held}, its open holds sum to {held}", expected=held,
            actual=a.held))
    if a.address.startswith("user:") and (a.balance < 0 or a.balance < a.held):
        found.append(Discrepancy(
            "negative_user_balance", "account", name,
            f"{name}: balance {a.balance} with {a.held} held", expected=max(a.held, 0),
            actual=a.balance))
    return found, Mark(a.id, a.balance, a.held, a.version, last_id)


def check_currency_sums(sums: Mapping[str, int]) -> list[Discrepancy]:
    return [Discrepancy("currency_sum_not_zero", "currency", currency,
                        f"the balances of {currency} sum to {total}, not 0", expected=0,
                        actual=total)
            for currency, total in sorted(sums.items()) if total != 0]


# --- transactions -----------------------------------------------------------------------------


def postings_of(tx: TxRow) -> list[dict[str, Any]] | None:
    try:
        postings = orjson.loads(tx.postings_json)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(postings, list) or not all(
            isinstance(p, dict) and isinstance(p.get("amount"), int)
            and all(isinstance(p.get(k), str) for k in ("source", "destination", "currency"))
            for p in postings):
        return None
    return postings


def expected_legs(postings: Sequence[Mapping[str, Any]]) -> list[Leg]:
    """The entries a transaction's postings make, in the order the ledger writes them."""
    legs: list[Leg] = []
    for i, p in enumerate(postings):
        legs.append((i, p["source"], p["currency"], -p["amount"]))
        legs.append((i, p["destination"], p["currency"], p["amount"]))
    return legs


def leg(e: EntryRow) -> Leg:
    return (e.posting_index, e.address, e.currency, e.amount)


def check_transaction(tx: TxRow, entries: Sequence[EntryRow]) -> list[Discrepancy]:
    """The entries are exactly the postings', and they balance in every currency."""
    found: list[Discrepancy] = []
    postings = postings_of(tx)
    if postings is None:
        return [Discrepancy("transaction_entries_mismatch", "transaction", tx.id,
                            f"transaction {tx.id}: its postings are not readable",
                            actual=tx.postings_json[:200])]
    want, have = Counter(expected_legs(postings)), Counter(leg(e) for e in entries)
    if want != have:
        missing = sorted((want - have).elements())
        extra = [e for e in entries if (have - want)[leg(e)] > 0]
        parts = [f"no entry for posting {i} on {a} ({c}) of {n}" for i, a, c, n in missing]
        parts += [f"entry {e.id} on {e.address} ({e.currency}) of {e.amount} matches no "
                  "posting" for e in extra]
        found.append(Discrepancy(
            "transaction_entries_mismatch", "transaction", tx.id,
            f"transaction {tx.id}: " + "; ".join(parts)[:900],
            expected=[list(x) for x in missing], actual=[e.id for e in extra]))
    sums: dict[str, int] = {}
    for e in entries:
        sums[e.currency] = sums.get(e.currency, 0) + e.amount
    for currency, total in sorted(sums.items()):
        if total != 0:
            found.append(Discrepancy(
                "unbalanced_transaction", "transaction", tx.id,
                f"transaction {tx.id}: its entries in {currency} sum to {total}",
                expected=0, actual=total))
    return found


# --- the hash chain ---------------------------------------------------------------------------


def diagnose(seal: Seal, tx: TxRow | None, entries: Sequence[EntryRow]) -> Discrepancy:
    """What changed in a sealed transaction whose hash no longer matches its seal."""
    where = f"seal {seal.sequence}: transaction {seal.transaction_id}"
    if tx is None:
        return Discrepancy("transaction_deleted", "transaction", seal.transaction_id,
                           f"{where} is not in the database", expected=seal.entry_count,
                           actual=None)
    if len(entries) < seal.entry_count:
        postings = postings_of(tx)
        lost = ""
        if postings is not None:
            missing = sorted((Counter(expected_legs(postings))
                              - Counter(leg(e) for e in entries)).elements())
            lost = "; missing: " + ", ".join(f"posting {i} on {a} ({c}) of {n}"
                                             for i, a, c, n in missing)
        return Discrepancy("entry_deleted", "transaction", tx.id,
                           f"{where} had {seal.entry_count} entries, has {len(entries)}{lost}",
                           expected=seal.entry_count, actual=len(entries))
    if len(entries) > seal.entry_count:
        return Discrepancy("entry_inserted", "transaction", tx.id,
                           f"{where} had {seal.entry_count} entries, has {len(entries)}: "
                           "entries " + ", ".join(str(e.id) for e in entries),
                           expected=seal.entry_count, actual=len(entries))
    postings = postings_of(tx)
    if postings is not None and len(entries) == 2 * len(postings):
        expected = expected_legs(postings)
        actual = [leg(e) for e in entries]
        if sorted(expected) == sorted(actual) and expected != actual:
            return Discrepancy("entries_reordered", "transaction", tx.id,
                               f"{where}: its entries are no longer in the order of its "
                               "postings (entry ids " + ", ".join(str(e.id) for e in entries)
                               + ")", expected=[list(x) for x in expected],
                               actual=[list(x) for x in actual])
        for want, e in zip(expected, entries, strict=True):
            if want[:3] == leg(e)[:3] and want[3] != e.amount:
                return Discrepancy("entry_amount_changed", "entry", str(e.id),
                                   f"{where}: entry {e.id} on {e.address} ({e.currency}) "
                                   f"moves {e.amount}, its posting {want[0]} says {want[3]}",
                                   expected=want[3], actual=e.amount)
            if want[1:3] != leg(e)[1:3]:
                return Discrepancy("entry_account_changed", "entry", str(e.id),
                                   f"{where}: entry {e.id} is on {e.address} ({e.currency}), "
                                   f"its posting {want[0]} says {want[1]} ({want[2]})",
                                   expected=f"{want[1]} ({want[2]})",
                                   actual=f"{e.address} ({e.currency})")
    return Discrepancy("transaction_changed", "transaction", tx.id,
                       f"{where} or one of its entries differs from what was sealed (a "
                       "field of the transaction, an entry's balance_after, time or id)",
                       expected=seal.hash)


# --- payments and withdrawals -----------------------------------------------------------------


def _moved(tx: LinkedTx, *, to: str | None = None, source: str | None = None,
           currency: str) -> int:
    return sum(int(p.get("amount", 0)) for p in tx.postings
               if p.get("currency") == currency
               and (to is None or p.get("destination") == to)
               and (source is None or p.get("source") == source))


def is_provider_credit(kind: str, initiator: str) -> bool:
    return kind == "topup" and initiator.startswith("provider:")


def check_order(o: OrderRow, referencing: Sequence[LinkedTx]) -> list[Discrepancy]:
    """A paid order has exactly one credit, the one it names, of its amount and bonus; a
    reversed amount has its reversal; an unpaid order has no credit."""
    found: list[Discrepancy] = []
    user = f"user:{o.user_id}"
    credits = [t for t in referencing if is_provider_credit(t.kind, t.initiator)
               and t.initiator == f"provider:{o.provider}"]
    by_id = {t.id: t for t in referencing}
    if o.status in CREDITED:
        credit = by_id.get(o.credit_transaction_id or "")
        if credit is None or not is_provider_credit(credit.kind, credit.initiator):
            found.append(Discrepancy(
                "paid_order_without_credit", "payment_order", o.id,
                f"order {o.id} is {o.status} but its credit "
                + (f"{o.credit_transaction_id} is not in the ledger"
                   if o.credit_transaction_id else "is missing"),
                expected="a topup transaction", actual=o.credit_transaction_id))
        elif (got := _moved(credit, to=user, currency=o.currency)) != o.amount + o.bonus:
            found.append(Discrepancy(
                "order_credit_mismatch", "payment_order", o.id,
                f"order {o.id} credits {o.amount} + {o.bonus} {o.currency}, its "
                f"transaction {credit.id} gives {user} {got}",
                expected=o.amount + o.bonus, actual=got))
    elif o.credit_transaction_id is not None or credits:
        found.append(Discrepancy(
            "credit_on_unpaid_order", "payment_order", o.id,
            f"order {o.id} is {o.status} yet has a credit "
            f"({o.credit_transaction_id or credits[0].id})",
            expected=None, actual=o.credit_transaction_id or credits[0].id))
    if len(credits) > 1:
        found.append(Discrepancy(
            "order_credited_twice", "payment_order", o.id,
            f"order {o.id} has {len(credits)} credits: " + ", ".join(t.id for t in credits),
            expected=1, actual=len(credits)))
    if o.reversed_amount > 0 or o.reversal_transaction_id is not None:
        reversal = by_id.get(o.reversal_transaction_id or "")
        taken = _moved(reversal, source=user, currency=o.currency) if reversal else None
        if taken != o.reversed_amount:
            found.append(Discrepancy(
                "reversal_missing", "payment_order", o.id,
                f"order {o.id} took back {o.reversed_amount} {o.currency}, its reversal "
                + (f"{reversal.id} moves {taken}" if reversal
                   else f"{o.reversal_transaction_id or '(none)'} is not in the ledger"),
                expected=o.reversed_amount, actual=taken))
    return found


def check_credit_link(tx: TxRow, order: OrderRow | None) -> list[Discrepancy]:
    """A credit from a provider names an order that records it as its credit."""
    if not is_provider_credit(tx.kind, tx.initiator):
        return []
    if order is not None and order.credit_transaction_id == tx.id:
        return []
    return [Discrepancy(
        "credit_without_order", "transaction", tx.id,
        f"transaction {tx.id} credits a top-up from {tx.initiator} for order "
        f"{tx.reference_id}, " + ("which does not exist" if order is None else
                                  f"which names {order.credit_transaction_id} as its credit"),
        expected=tx.id, actual=order.credit_transaction_id if order else None)]


def check_withdrawal(w: WithdrawalRow, tx: LinkedTx | None) -> list[Discrepancy]:
    """An approved or paid withdrawal has its capture: the amount out of the user's wallet,
    and its hold captured by that transaction."""
    user = f"user:{w.user_id}"
    taken = _moved(tx, source=user, currency=w.currency) if tx else None
    if tx is not None and taken == w.amount and w.hold_status == "captured" \
            and w.hold_transaction_id == tx.id:
        return []
    what = (f"its capture {w.transaction_id or '(none)'} is not in the ledger" if tx is None
            else f"its capture {tx.id} takes {taken} from {user}" if taken != w.amount
            else f"its hold {w.hold_id} is {w.hold_status or 'missing'}"
            + (f" by {w.hold_transaction_id}" if w.hold_transaction_id else ""))
    return [Discrepancy("withdrawal_without_capture", "withdrawal", w.id,
                        f"withdrawal {w.id} is {w.status} for {w.amount} {w.currency}, but "
                        + what, expected=w.amount, actual=taken)]


# --- the shop -----------------------------------------------------------------------------------

def _owned_by(address: str, user_id: str) -> bool:
    """The user's cash wallet or one of their sub-wallets (``user:<id>:bonus``)."""
    own = f"user:{user_id}"
    return address == own or address.startswith(own + ":")


def _net(tx: LinkedTx, currency: str, owns: Any) -> int:
    """What the accounts ``owns`` accepts gain in ``currency`` (negative: what they pay),
    moves among them left out."""
    total = 0
    for p in tx.postings:
        if p.get("currency") != currency:
            continue
        into, out = owns(str(p.get("destination"))), owns(str(p.get("source")))
        if into and not out:
            total += int(p.get("amount", 0))
        elif out and not into:
            total -= int(p.get("amount", 0))
    return total


def _shop_tx_ok(tx: LinkedTx | None, kind: str, order_id: str) -> bool:
    return tx is not None and tx.kind == kind and tx.reference_id == order_id


def check_shop_order(o: ShopOrderRow, purchase: LinkedTx | None,
                     refunds: Sequence[tuple[ShopRefundRow, LinkedTx | None]]
                     ) -> list[Discrepancy]:
    """A shop order agrees with the ledger: its purchase takes its amount from the buyer
    (cash or sub-wallets) and leaves the merchant the amount less the fee; each refund gives
    the buyer its amount and takes it less its fee share from the merchant; the order's
    refunded totals and status are the sum of its refunds."""
    found: list[Discrepancy] = []
    merchant = f"user:{o.merchant_id}"
    if not _shop_tx_ok(purchase, "purchase", o.id):
        found.append(Discrepancy(
            "shop_order_without_purchase", "shop_order", o.id,
            f"shop order {o.id}: its purchase {o.transaction_id} is "
            + ("not in the ledger" if purchase is None
               else f"a {purchase.kind} of {purchase.reference_id}"),
            expected="a purchase transaction", actual=o.transaction_id))
    else:
        assert purchase is not None
        paid = -_net(purchase, o.currency, lambda a: _owned_by(a, o.buyer_id))
        kept = _net(purchase, o.currency, lambda a: a == merchant)
        if (paid, kept) != (o.amount, o.amount - o.fee):
            found.append(Discrepancy(
                "shop_order_amount_mismatch", "shop_order", o.id,
                f"shop order {o.id}: {o.amount} {o.currency} with a fee of {o.fee}, but its "
                f"purchase {purchase.id} takes {paid} from user:{o.buyer_id} and leaves "
                f"{merchant} {kept}", expected=[o.amount, o.amount - o.fee],
                actual=[paid, kept]))
    for refund, tx in refunds:
        if not _shop_tx_ok(tx, "refund", o.id):
            found.append(Discrepancy(
                "shop_refund_mismatch", "shop_order", o.id,
                f"shop order {o.id}: refund {refund.id}'s transaction {refund.transaction_id} "
                "is " + ("not in the ledger" if tx is None
                         else f"a {tx.kind} of {tx.reference_id}"),
                expected="a refund transaction", actual=refund.transaction_id))
            continue
        assert tx is not None
        got = _net(tx, o.currency, lambda a: _owned_by(a, o.buyer_id))
        given = -_net(tx, o.currency, lambda a: a == merchant)
        if (got, given) != (refund.amount, refund.amount - refund.fee):
            found.append(Discrepancy(
                "shop_refund_mismatch", "shop_order", o.id,
                f"shop order {o.id}: refund {refund.id} of {refund.amount} {o.currency} "
                f"(fee share {refund.fee}), but its transaction {tx.id} gives the buyer "
                f"{got} and takes {given} from {merchant}",
                expected=[refund.amount, refund.amount - refund.fee], actual=[got, given]))
    refunded = sum(r.amount for r, _ in refunds)
    refunded_fee = sum(r.fee for r, _ in refunds)
    status = ("paid" if refunded == 0 else "refunded" if refunded == o.amount
              else "partially_refunded")
    if (o.refunded_amount, o.refunded_fee, o.status) != (refunded, refunded_fee, status):
        found.append(Discrepancy(
            "shop_refund_mismatch", "shop_order", o.id,
            f"shop order {o.id} is {o.status} with {o.refunded_amount} refunded (fee "
            f"{o.refunded_fee}); its {len(refunds)} refunds make it {status} with {refunded} "
            f"(fee {refunded_fee})", expected=[refunded, refunded_fee, status],
            actual=[o.refunded_amount, o.refunded_fee, o.status]))
    return found


def is_shop(tx: TxRow) -> bool:
    return tx.service == SHOP_SERVICE and tx.kind in ("purchase", "refund")


def check_shop_link(tx: TxRow, order: ShopOrderRow | None,
                    refunds: Sequence[ShopRefundRow]) -> list[Discrepancy]:
    """A shop purchase is the transaction of the order it names; a shop refund, of one of
    that order's refunds."""
    if not is_shop(tx):
        return []
    if tx.kind == "purchase" and order is not None and order.transaction_id == tx.id:
        return []
    if tx.kind == "refund" and any(r.transaction_id == tx.id for r in refunds):
        return []
    return [Discrepancy(
        "purchase_without_order", "transaction", tx.id,
        f"transaction {tx.id} is a shop {tx.kind} for order {tx.reference_id}, "
        + ("which does not exist" if order is None else "which does not record it"),
        expected=tx.id, actual=None)]


# --- bonuses ------------------------------------------------------------------------------------


def check_bonus_wallets(wallets: Mapping[tuple[str, str], int],
                        remaining: Mapping[tuple[str, str], int]) -> list[Discrepancy]:
    """Each bonus wallet (``user:<id>:bonus``, per currency) holds exactly what remains of
    the user's active bonuses: every grant, spend, give-back, conversion, forfeit and expiry
    moves the wallet and the bonus rows in one commit, and closed bonuses hold nothing."""
    found = []
    for address, currency in sorted(wallets.keys() | remaining.keys()):
        held, owed = wallets.get((address, currency), 0), remaining.get((address, currency), 0)
        if held != owed:
            found.append(Discrepancy(
                "bonus_wallet_mismatch", "account", f"{address} ({currency})",
                f"{address} holds {held} {currency} but its active bonuses have {owed} left",
                expected=owed, actual=held))
    return found
