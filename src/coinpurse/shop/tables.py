"""Products, the orders that bought them, and the refunds of those orders."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from coinpurse.core.tables import UTCDateTime, metadata

products = Table(
    "products",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("merchant_id", String(128), nullable=False),
    Column("name", String(120), nullable=False),
    Column("description", String(2000), nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("currency", String(16), nullable=False),
    Column("stock", BigInteger, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("metadata_json", Text, nullable=False),
    # Counts every change (edits, sales, restocks): the product's ETag and If-Match.
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    CheckConstraint("price > 0", name="price_positive"),
    CheckConstraint("stock >= 0", name="stock_not_negative"),
    Index(None, "merchant_id", "id"),
    Index(None, "active", "id"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("buyer_id", String(128), nullable=False),
    Column("merchant_id", String(128), nullable=False),
    Column("product_id", String(36), ForeignKey("products.id"), nullable=False),
    Column("product_name", String(120), nullable=False),  # as it was when bought
    Column("quantity", BigInteger, nullable=False),
    Column("unit_price", BigInteger, nullable=False),
    Column("currency", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),  # unit_price * quantity, paid by the buyer
    Column("fee", BigInteger, nullable=False),  # of it, the platform's
    Column("refunded_amount", BigInteger, nullable=False),
    Column("refunded_fee", BigInteger, nullable=False),
    Column("restocked_quantity", BigInteger, nullable=False),
    Column("status", String(24), nullable=False),  # paid, partially_refunded, refunded
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("quantity > 0 AND unit_price > 0 AND amount > 0", name="amounts_positive"),
    CheckConstraint("fee >= 0 AND fee <= amount", name="fee_within_amount"),
    CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount",
                    name="refunds_within_amount"),
    CheckConstraint("refunded_fee >= 0 AND refunded_fee <= fee", name="refunded_fee_within_fee"),
    CheckConstraint("restocked_quantity >= 0 AND restocked_quantity <= quantity",
                    name="restock_within_quantity"),
    Index(None, "buyer_id", "id"),
    Index(None, "merchant_id", "id"),
    Index(None, "product_id", "id"),
    Index(None, "status", "id"),
)

order_refunds = Table(
    "order_refunds",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("order_id", String(36), ForeignKey("orders.id"), nullable=False),
    Column("product_id", String(36), nullable=False),
    Column("amount", BigInteger, nullable=False),  # back to the buyer in all
    Column("fee", BigInteger, nullable=False),  # of it, returned by the platform
    Column("restock_quantity", BigInteger, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("refunded_by", String(160), nullable=False),  # user:<merchant> or admin:<id>
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("amount > 0 AND fee >= 0 AND fee <= amount AND restock_quantity >= 0",
                    name="amounts_valid"),
    Index(None, "order_id", "id"),
)
