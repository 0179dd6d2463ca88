"""The shop's refusals."""

from __future__ import annotations

from coinpurse.core.errors import CoinpurseError


class OutOfStock(CoinpurseError):
    code = "out_of_stock"
    status = 409
    title = "Not enough stock left"


class PriceChanged(CoinpurseError):
    code = "price_changed"
    status = 409
    title = "The price changed since you saw it"


class ProductInactive(CoinpurseError):
    code = "product_inactive"
    status = 409
    title = "The product is not for sale"


class OwnProduct(CoinpurseError):
    code = "own_product"
    status = 422
    title = "A merchant cannot buy its own product"


class OrderRefunded(CoinpurseError):
    code = "order_refunded"
    status = 409
    title = "The order is already fully refunded"


class RefundExceedsPaid(CoinpurseError):
    code = "refund_exceeds_paid"
    status = 422
    title = "The refund is more than what is left of the order's payment"


class PreconditionFailed(CoinpurseError):
    code = "precondition_failed"
    status = 412
    title = "The resource changed since the version named in If-Match"
