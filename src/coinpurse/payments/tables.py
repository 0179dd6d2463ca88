"""Top-up orders, the providers' webhook inbox, and debts left by refunds."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from coinpurse.core.tables import BigId, UTCDateTime, metadata

# Top-ups, withdrawals and KYC (migration 0004).
payment_orders = Table(
    "payment_orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("provider_order_id", String(255), nullable=True),
    Column("provider_payment_id", String(255), nullable=True),
    Column("package_id", String(32), nullable=True),
    Column("currency", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("bonus", BigInteger, nullable=False, server_default="0"),
    Column("price", BigInteger, nullable=False),
    Column("price_currency", String(3), nullable=False),
    # created, pending, succeeded, failed, refunded, disputed
    Column("status", String(16), nullable=False),
    Column("checkout_url", Text, nullable=True),
    Column("client_params_json", Text, nullable=True),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("credit_transaction_id", String(36), nullable=True),
    Column("reversal_transaction_id", String(36), nullable=True),
    Column("reversed_amount", BigInteger, nullable=False, server_default="0"),
    Column("debt_amount", BigInteger, nullable=False, server_default="0"),
    Column("error", String(500), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("paid_at", UTCDateTime, nullable=True),
    Column("reversed_at", UTCDateTime, nullable=True),
    UniqueConstraint("provider", "provider_order_id"),
    UniqueConstraint("user_id", "idempotency_key"),
    CheckConstraint("amount > 0 AND bonus >= 0 AND price > 0", name="amounts_positive"),
    Index(None, "user_id", "id"),
    Index(None, "status", "id"),
    Index(None, "provider", "provider_payment_id"),
)

webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("provider", String(16), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    # received (waiting or retrying), processed, ignored, failed (gave up: an operator looks)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("last_error", String(1000), nullable=True),
    Column("order_id", String(36), nullable=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("processed_at", UTCDateTime, nullable=True),
    UniqueConstraint("provider", "event_id"),
    Index(None, "status", "next_attempt_at"),
)

# Append-only: + what a refund or lost dispute could not take back, - what a top-up repaid.
# A user's outstanding debt to a creditor account is the sum of the rows.
user_debts = Table(
    "user_debts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(128), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("creditor", String(255), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("order_id", String(36), nullable=False),
    Column("transaction_id", String(36), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("amount <> 0", name="amount_not_zero"),
    Index(None, "user_id", "currency"),
)
