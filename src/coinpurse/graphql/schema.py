"""The GraphQL schema: queries, mutations and subscriptions over the domains' services.

A resolver authorizes like the REST route does (``Context``), validates its input with the
REST request model, calls the service function the REST route calls and renders the REST
answer's JSON as the GraphQL type. Money-moving mutations share the REST idempotency keys
and hashes: a key used over REST and replayed here (same input) gives the same answer.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any, TypeVar

import orjson
import pydantic
import strawberry
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from coinpurse.bonuses import schemas as bonus_schemas
from coinpurse.bonuses.model import BonusFilter
from coinpurse.bonuses.service import Bonuses
from coinpurse.core import cursor
from coinpurse.core.cluster import faults
from coinpurse.core.errors import (
    CoinpurseError,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from coinpurse.core.pages import PAGE_MAX
from coinpurse.core.types import ADDRESS_RE, AMOUNT_MAX, IDEMPOTENCY_KEY_RE, USER_ID_RE
from coinpurse.events import notifications
from coinpurse.events import schemas as event_schemas
from coinpurse.gifts import schemas as gift_schemas
from coinpurse.gifts.service import Gifts
from coinpurse.graphql import schemas as g
from coinpurse.graphql import service
from coinpurse.graphql.context import Context
from coinpurse.graphql.schemas import LONG, Long, build, connection
from coinpurse.graphql.settings import GraphQLSettings
from coinpurse.holds import schemas as hold_schemas
from coinpurse.holds.service import Holds
from coinpurse.kyc import schemas as kyc_schemas
from coinpurse.kyc import service as kyc
from coinpurse.ledger.service import JobResult
from coinpurse.payments import schemas as payment_schemas
from coinpurse.payments import service as payments
from coinpurse.shop import schemas as shop_schemas
from coinpurse.shop import service as shop
from coinpurse.shop.model import ProductFilter
from coinpurse.wallets import schemas as wallet_schemas
from coinpurse.withdrawals import schemas as withdrawal_schemas
from coinpurse.withdrawals import service as withdrawals
from graphql import GraphQLError

log = logging.getLogger("coinpurse.graphql")
Info = strawberry.Info[Context, None]
Model = TypeVar("Model", bound=pydantic.BaseModel)
ID_RE = re.compile(r"^[0-9a-f-]{1,36}$")
TRANSACTION_ID_RE = re.compile(r"^[\x21-\x7e]{1,64}$")
CURSOR_MAX = 96


class StoredProblem(Exception):
    """A refusal the ledger stored with the idempotency key (replayed as it was first
    answered): its problem document, as REST sends it."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail", "refused")))
        self.problem = problem


# ------------------------------------------------------------------ input checks


def _invalid(arg: str, detail: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(detail, [{"loc": ["arguments", arg], "msg": detail,
                                      "type": kind}])


def _first(first: int) -> int:
    if not 1 <= first <= PAGE_MAX:
        raise _invalid("first", f"first must be from 1 to {PAGE_MAX}", "less_than_equal")
    return first


def _after(after: str | None) -> str | None:
    if after is not None and len(after) > CURSOR_MAX:
        raise _invalid("after", "the cursor is not one this API returned", "invalid_cursor")
    return after


def _match(arg: str, value: str, pattern: str | re.Pattern[str], max_len: int) -> str:
    if len(value) > max_len or not re.fullmatch(pattern, value):
        raise _invalid(arg, f"{arg} is not valid", "string_pattern_mismatch")
    return value


def _key(idempotency_key: str) -> str:
    if not IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key):
        raise _invalid("idempotencyKey", "the idempotency key must be 1 to 255 printable "
                       "ASCII characters", "string_pattern")
    return idempotency_key


def _body(model: type[Model], data: object) -> Model:
    """The REST request model from a GraphQL input: same rules, same idempotency hash."""
    raw = {k: v for k, v in vars(data).items() if v is not None}
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        errors = [{"loc": ["input", *(str(p) for p in e["loc"])], "msg": e["msg"],
                   "type": e["type"]} for e in exc.errors(include_url=False,
                                                           include_context=False)]
        fields = ", ".join(".".join(e["loc"][1:]) for e in errors[:5])
        raise ValidationFailed(f"invalid input: {fields}", errors) from None


class _Args:
    """Plain arguments as an input object, for ``_body``."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def _answer(result: JobResult) -> dict[str, Any]:
    """The ledger's stored answer (the REST body); a stored refusal is raised."""
    body: dict[str, Any] = orjson.loads(result.response.body)
    if result.response.status >= 400:
        raise StoredProblem(body)
    return body


def _balances(found: Mapping[str, Any],
              bonus: Mapping[str, int] | None = None) -> list[g.Balance]:
    return [g.Balance(currency=c, balance=b.balance, held=b.held, available=b.available,
                      bonus=Long(bonus.get(c, 0)) if bonus is not None else None)
            for c, b in found.items()]


# ------------------------------------------------------------------ queries


@strawberry.type(description="The caller (a user token or the browser's session).")
class Me:
    user_id: str

    @strawberry.field(description="The main wallet in every configured currency.")
    async def wallets(self, info: Info) -> list[g.Balance]:
        return _balances(*await info.context.wallets().user_balances(self.user_id))

    @strawberry.field(description="The history, newest first (the REST "
                      "`/api/v1/wallet/transactions`).")
    async def transactions(self, info: Info, first: int = 50, after: str | None = None,
                           filters: g.TransactionFilter | None = None
                           ) -> g.Connection[g.WalletTransaction]:
        page = await info.context.wallets().history(
            self.user_id, currency=filters.currency if filters else None,
            limit=_first(first), cursor_text=_after(after))
        found = wallet_schemas.HistoryPage.of(page)
        return connection([
            (g.WalletTransaction(**line.model_dump(), posted_at=entry.created_at),
             cursor.encode(entry.id))
            for line, entry in zip(found.data, page.items, strict=True)], page.next_cursor)

    @strawberry.field(description="Open holds on the caller's wallets, newest first (at "
                      f"most {PAGE_MAX}).")
    async def holds(self, info: Info) -> list[g.Hold]:
        state = info.context.state
        found = await Holds(state.db, state.ledger).open_of_user(self.user_id, PAGE_MAX)
        return [build(g.Hold, hold_schemas.HoldOut.of(h).model_dump(mode="json"))
                for h in found]

    @strawberry.field(description="Gifts sent or received, newest first.")
    async def gifts(self, info: Info, direction: g.GiftDirection = g.GiftDirection.SENT,
                    first: int = 50, after: str | None = None) -> g.Connection[g.Gift]:
        state = info.context.state
        page = await Gifts(state.db, state.ledger, state.settings,
                           builtin_accounts=state.settings.auth == "builtin").page(
            self.user_id, direction=direction.value, cursor_text=_after(after),
            limit=_first(first))
        return connection([(build(g.Gift, gift_schemas.GiftOut.of(x).model_dump(mode="json")),
                            cursor.encode_text(x.id)) for x in page.items], page.next_cursor)

    @strawberry.field(description="Top-up payment orders, newest first.")
    async def topups(self, info: Info, first: int = 50,
                     after: str | None = None) -> g.Connection[g.Topup]:
        found, next_id = await payments.list_orders(
            info.context.state.db, user_id=self.user_id,
            before=cursor.decode_text(_after(after)), limit=_first(first))
        return connection(
            [(build(g.Topup, payment_schemas.OrderOut.from_domain(o).model_dump(mode="json")),
              cursor.encode_text(o.id)) for o in found],
            cursor.encode_text(next_id) if next_id else None)

    @strawberry.field(description="Withdrawals, newest first.")
    async def withdrawals(self, info: Info, first: int = 50,
                          after: str | None = None) -> g.Connection[g.Withdrawal]:
        found, next_id = await withdrawals.list_withdrawals(
            info.context.state.db, user_id=self.user_id,
            before=cursor.decode_text(_after(after)), limit=_first(first))
        return connection(
            [(build(g.Withdrawal,
                    withdrawal_schemas.WithdrawalOut.from_domain(w).model_dump(mode="json")),
              cursor.encode_text(w.id)) for w in found],
            cursor.encode_text(next_id) if next_id else None)

    @strawberry.field(description="The KYC tier, its limits and the latest submission.")
    async def kyc(self, info: Info) -> g.Kyc:
        state = info.context.state
        found = await kyc.status(state.db, state.settings, self.user_id)
        return build(g.Kyc, kyc_schemas.KycStatusOut.from_domain(found).model_dump(mode="json"))

    @strawberry.field(description="Notifications, newest first, with the unread count.")
    async def notifications(self, info: Info, unread: bool = False, first: int = 50,
                            after: str | None = None) -> g.NotificationConnection:
        found, next_id, unread_count = await notifications.page(
            info.context.state.db, self.user_id, unread=unread,
            before=cursor.decode_text(_after(after)), limit=_first(first))
        page = connection(
            [(build(g.Notification, event_schemas.NotificationOut.of(n).model_dump()),
              cursor.encode_text(n.id)) for n in found],
            cursor.encode_text(next_id) if next_id else None)
        return g.NotificationConnection(edges=page.edges, page_info=page.page_info,
                                        unread_count=unread_count)

    @strawberry.field(description="Bonuses, newest first, with their wagering progress.")
    async def bonuses(self, info: Info, status: g.BonusStatus | None = None,
                      currency: str | None = None, first: int = 50,
                      after: str | None = None) -> g.Connection[g.Bonus]:
        state = info.context.state
        page = await Bonuses(state.db, state.ledger, state.settings).bonuses(
            BonusFilter(user_id=self.user_id, status=status.value if status else None,
                        currency=currency), cursor_text=_after(after), limit=_first(first))
        return connection(
            [(build(g.Bonus, bonus_schemas.BonusOut.model_validate(
                bonus_schemas.BonusOut.fields(x)).model_dump(mode="json")),
              cursor.encode_text(x.id)) for x in page.items], page.next_cursor)

    @strawberry.field(description="Shop purchases, newest first.")
    async def orders(self, info: Info, status: g.OrderStatus | None = None, first: int = 50,
                     after: str | None = None) -> g.Connection[g.ShopOrder]:
        page = await shop.list_orders(
            info.context.state.db,
            shop.order_filter(buyer_id=self.user_id, status=status.value if status else None),
            before=cursor.decode_text(_after(after)), limit=_first(first))
        return connection(
            [(build(g.ShopOrder, shop_schemas.ShopOrderOut.of(o).answer()),
              cursor.encode_text(o.id)) for o in page.data],
            cursor.encode_text(page.next_id) if page.next_id else None)


@strawberry.input(description="Which products of the catalog.")
class ProductFilterInput:
    merchant_id: str | None = None
    q: str | None = strawberry.field(default=None, description="Part of the name, any case.")
    min_price: Long | None = None
    max_price: Long | None = None
    currency: str | None = None
    in_stock: bool | None = None


def _product_filter(state_currency: Any, f: ProductFilterInput | None) -> ProductFilter:
    if f is None:
        return ProductFilter()
    if f.merchant_id is not None:
        _match("filter.merchantId", f.merchant_id, USER_ID_RE, 128)
    if f.q is not None and not 1 <= len(f.q) <= 100:
        raise _invalid("filter.q", "q is 1 to 100 characters")
    for name, price in (("minPrice", f.min_price), ("maxPrice", f.max_price)):
        if price is not None and not 0 <= price <= AMOUNT_MAX:
            raise _invalid(f"filter.{name}", f"{name} is from 0 to 2^63-1")
    if f.currency is not None:
        state_currency(f.currency)
    return ProductFilter(merchant_id=f.merchant_id, q=f.q, min_price=f.min_price,
                         max_price=f.max_price, currency=f.currency, in_stock=f.in_stock)


@strawberry.type
class Query:
    @strawberry.field(description="The caller: a user token (or the web wallet's session).")
    async def me(self, info: Info) -> Me:
        return Me(user_id=await info.context.user_id())

    @strawberry.field(description="The shop's catalog: active products, newest first. No "
                      "token needed.")
    async def products(self, info: Info, first: int = 50, after: str | None = None,
                       filter: ProductFilterInput | None = None
                       ) -> g.Connection[g.Product]:
        state = info.context.state
        page = await shop.catalog(state.db, _product_filter(state.settings.currency, filter),
                                  before=cursor.decode_text(_after(after)),
                                  limit=_first(first))
        return connection(
            [(build(g.Product, shop_schemas.ProductOut.of(p).answer()),
              cursor.encode_text(p.id)) for p in page.data],
            cursor.encode_text(page.next_id) if page.next_id else None)

    @strawberry.field(description="A user's balances. Services: `X-API-Key` with scope "
                      "`wallet:read`.")
    async def wallet(self, info: Info, user_id: str) -> g.UserWallet:
        await info.context.service("wallet:read")
        _match("userId", user_id, USER_ID_RE, 128)
        found, bonus = await info.context.wallets().user_balances(user_id)
        return g.UserWallet(user_id=user_id, wallets=_balances(found, bonus))

    @strawberry.field(description="Any address's balances, system accounts included. "
                      "Services: scope `wallet:read`.")
    async def account(self, info: Info, address: str) -> g.Account:
        await info.context.service("wallet:read")
        _match("address", address, ADDRESS_RE, 255)
        found = await info.context.wallets().balances(address)
        return g.Account(address=address, balances=_balances(found))

    @strawberry.field(description="One transaction with its entries and internal notes. "
                      "Services: scope `wallet:read`; `not_found` if there is none.")
    async def transaction(self, info: Info, id: str) -> g.AuditTransaction:
        await info.context.service("wallet:read")
        _match("id", id, TRANSACTION_ID_RE, 64)
        found = await info.context.wallets().transaction(id)
        if found is None:
            raise NotFound(f"no transaction {id!r}")
        return build(g.AuditTransaction,
                     wallet_schemas.TransactionAuditOut.of(found).model_dump(mode="json"))


# ------------------------------------------------------------------ mutations


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Send a gift (REST `POST /api/v1/gifts`); the key is "
                         "scoped to the caller.")
    async def send_gift(self, info: Info, input: g.SendGiftInput,
                        idempotency_key: str) -> g.SendGiftPayload:
        user_id = await info.context.user_id()
        body = _body(gift_schemas.GiftIn, input)
        state = info.context.state
        result = await Gifts(state.db, state.ledger, state.settings,
                             builtin_accounts=state.settings.auth == "builtin").send(
            user_id, body, _key(idempotency_key))
        return g.SendGiftPayload(gift=build(g.SentGift, _answer(result)),
                                 replayed=result.replayed)

    @strawberry.mutation(description="Start a top-up: a payment order and its checkout "
                         "(REST `POST /api/v1/topups`).")
    async def create_topup(self, info: Info, input: g.CreateTopupInput,
                           idempotency_key: str) -> g.CreateTopupPayload:
        user_id = await info.context.user_id()
        body = _body(payment_schemas.TopupIn, input)
        state = info.context.state
        order, replayed = await payments.create_order(
            payments.Payments(state.db, state.ledger, state.settings, state.settings,
                              state.settings),
            user_id, _key(idempotency_key), provider_name=body.provider,
            package_id=body.package_id, amount=body.amount, currency=body.currency)
        return g.CreateTopupPayload(
            topup=build(g.Topup,
                        payment_schemas.OrderOut.from_domain(order).model_dump(mode="json")),
            replayed=replayed)

    @strawberry.mutation(description="Ask to cash out: the amount is held until an operator "
                         "decides (REST `POST /api/v1/withdrawals`).")
    async def request_withdrawal(self, info: Info,
                                 input: g.RequestWithdrawalInput,
                                 idempotency_key: str) -> g.RequestWithdrawalPayload:
        user_id = await info.context.user_id()
        body = _body(withdrawal_schemas.WithdrawalIn, input)
        state = info.context.state
        result = await withdrawals.request(
            withdrawals.Withdrawals(state.db, state.ledger, state.settings, state.settings,
                                    state.settings),
            user_id, _key(idempotency_key), currency=body.currency, amount=body.amount,
            destination=body.destination)
        return g.RequestWithdrawalPayload(withdrawal=build(g.WithdrawalCreated,
                                                           _answer(result)),
                                          replayed=result.replayed)

    @strawberry.mutation(description="Cancel a pending withdrawal; its hold is released. "
                         "Idempotent by itself, as in REST: cancelling a cancelled "
                         "withdrawal answers it again, so `idempotencyKey` is optional and "
                         "only checked for its form.")
    async def cancel_withdrawal(self, info: Info, id: str,
                                idempotency_key: str | None = None
                                ) -> g.CancelWithdrawalPayload:
        user_id = await info.context.user_id()
        _match("id", id, ID_RE, 36)
        if idempotency_key is not None:
            _key(idempotency_key)
        state = info.context.state
        found = await withdrawals.cancel(
            withdrawals.Withdrawals(state.db, state.ledger, state.settings, state.settings,
                                    state.settings),
            user_id, id)
        return g.CancelWithdrawalPayload(withdrawal=build(
            g.Withdrawal, withdrawal_schemas.WithdrawalOut.from_domain(found)
            .model_dump(mode="json")))

    @strawberry.mutation(description="Mark notifications read: those of `ids`, or every one "
                         "(REST `POST /api/v1/notifications/{id}/read` and `.../read-all`). "
                         "Idempotent by itself (marking a read one again changes nothing), "
                         "so `idempotencyKey` is optional and only checked for its form.")
    async def mark_notifications_read(self, info: Info, ids: list[str] | None = None,
                                      idempotency_key: str | None = None
                                      ) -> g.MarkNotificationsReadPayload:
        user_id = await info.context.user_id()
        if idempotency_key is not None:
            _key(idempotency_key)
        db = info.context.state.db
        marked: list[g.Notification] = []
        if ids is None:
            await notifications.read_all(db, user_id)
        else:
            if len(ids) > PAGE_MAX:
                raise _invalid("ids", f"at most {PAGE_MAX} ids")
            for notification_id in dict.fromkeys(_match("ids", i, ID_RE, 36) for i in ids):
                found = await notifications.read(db, user_id, notification_id)
                marked.append(build(g.Notification,
                                    event_schemas.NotificationOut.of(found).model_dump()))
        _, _, unread_count = await notifications.page(db, user_id, unread=True, before=None,
                                                      limit=1)
        return g.MarkNotificationsReadPayload(notifications=marked, unread_count=unread_count)

    @strawberry.mutation(description="Claim a promotion's code: its bonus lands in the bonus "
                         "wallet (REST `POST /api/v1/bonuses/claim`).")
    async def claim_bonus(self, info: Info, code: str,
                          idempotency_key: str) -> g.ClaimBonusPayload:
        user_id = await info.context.user_id()
        body = _body(bonus_schemas.ClaimIn, _Args(code=code))
        state = info.context.state
        result = await Bonuses(state.db, state.ledger, state.settings).claim(
            user_id, body.code, _key(idempotency_key))
        return g.ClaimBonusPayload(bonus=build(g.Bonus, _answer(result)),
                                   replayed=result.replayed)

    @strawberry.mutation(description="Buy a product with the wallet's money (REST "
                         "`POST /api/v1/orders`).")
    async def purchase(self, info: Info, input: g.PurchaseInput,
                       idempotency_key: str) -> g.PurchasePayload:
        user_id = await info.context.user_id()
        body = _body(shop_schemas.OrderIn, input)
        state = info.context.state
        result = await shop.place_order(
            shop.Shop(state.db, state.ledger, state.settings, state.settings), user_id,
            _key(idempotency_key),
            product_id=body.product_id, quantity=body.quantity,
            expected_unit_price=body.expected_unit_price)
        return g.PurchasePayload(order=build(g.ShopOrderCreated, _answer(result)),
                                 replayed=result.replayed)


# ------------------------------------------------------------------ subscriptions


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Each change of the caller's balances (main wallet "
                             "and sub-wallets) from now on, from the event log.")
    async def balance_updated(self, info: Info) -> AsyncGenerator[g.BalanceUpdate, None]:
        state = info.context.state
        user_id = await info.context.user_id()
        async for m in service.messages(state.live, user_id, "balance.updated",
                                        state.settings.live_heartbeat_s):
            d = m.data
            yield g.BalanceUpdate(
                wallet=d["wallet"], address=d["address"], currency=d["currency"],
                balance=Long(d["balance"]), held=Long(d["held"]),
                available=Long(d["available"]), version=Long(d["version"]),
                transaction_id=d["transaction_id"], hold_id=d["hold_id"], event_id=str(m.id))

    @strawberry.subscription(description="Each new notification of the caller, from now on.")
    async def notification_added(self, info: Info) -> AsyncGenerator[g.Notification, None]:
        state = info.context.state
        user_id = await info.context.user_id()
        async for m in service.messages(state.live, user_id, "notification.created",
                                        state.settings.live_heartbeat_s):
            yield build(g.Notification, m.data)


# ------------------------------------------------------------------ errors and limits

LIMIT_REASONS = (("exceeds maximum operation depth", "query_too_deep"),
                 ("aliases found", "too_many_aliases"),
                 ("more than", "too_many_tokens"),
                 ("introspection", "introspection_disabled"))


def problem_of(error: GraphQLError) -> dict[str, Any]:
    """The REST problem an error stands for: a Coinpurse error's own; a stored refusal's;
    a document refused before it runs (syntax, unknown fields, bad argument types, the
    caps, a scalar that does not parse) is ``validation_error``; anything else an
    ``internal_error`` that says nothing."""
    original = error.original_error
    if isinstance(original, CoinpurseError):
        return original.problem()
    if isinstance(original, StoredProblem):
        return original.problem
    if original is None or error.path is None:  # refused before anything ran
        lowered = error.message.lower()
        reason = next((r for text, r in LIMIT_REASONS if text in lowered), "invalid_document")
        return ValidationFailed(error.message, reason=reason).problem()
    if faults.is_transient(original):
        log.warning("database unavailable: %r", original)
        return ServiceUnavailable("the database is unavailable (a failover or a restart); "
                                  "retry shortly, with the same idempotency key").problem()
    log.error("unhandled error in a GraphQL resolver", exc_info=original)
    return CoinpurseError("an unexpected error occurred").problem()


class CoinpurseSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        """Each error gets the REST problem's ``code`` and ``status`` (and its extra
        members) in ``extensions``; unexpected errors are masked and logged."""
        for error in errors:
            if error.extensions and "code" in error.extensions:
                continue  # formatted already (a subscription's error passes twice)
            problem = problem_of(error)
            error.message = str(problem.get("detail", error.message))
            error.extensions = {k: v for k, v in problem.items()
                                if k not in ("type", "title", "detail")}


class Limits(SchemaExtension):
    """The caps, from the running app's settings (read per operation: the schema is built
    once, at import): tokens, depth, aliases, and introspection when it is off. Each cap
    is Strawberry's own extension; a document past one is refused before it runs."""

    def on_operation(self) -> Iterator[None]:
        settings: GraphQLSettings = self.execution_context.context.state.settings
        running = []
        for cap in _caps(settings.graphql_tokens_max, settings.graphql_depth_max,
                         settings.graphql_aliases_max, settings.graphql_introspection):
            cap.execution_context = self.execution_context
            step = cap.on_operation()
            assert isinstance(step, Iterator)
            next(step)
            running.append(step)
        yield
        for step in running:
            next(step, None)


@functools.cache
def _caps(tokens_max: int, depth_max: int, aliases_max: int,
          introspection: bool) -> tuple[SchemaExtension, ...]:
    caps: list[SchemaExtension] = [
        MaxTokensLimiter(max_token_count=tokens_max),
        QueryDepthLimiter(max_depth=depth_max),
        MaxAliasesLimiter(max_alias_count=aliases_max),
    ]
    if not introspection:
        caps.append(DisableIntrospection())
    return tuple(caps)


schema = CoinpurseSchema(query=Query, mutation=Mutation, subscription=Subscription,
                         extensions=[Limits], config=StrawberryConfig(scalar_map={Long: LONG}))
