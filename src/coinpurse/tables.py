"""The schema, as SQLAlchemy Core tables: one definition for SQLite and PostgreSQL.

Alembic migrations create these tables; queries use them so that types (timestamps, bytes)
come back the same from both databases. The database guards the invariants it can check
cheaply: amounts are non-zero, holds are non-negative, and an account that may not go
negative never does (``CHECK``), whatever bug sits above it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, also on SQLite, which stores them naive."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


accounts = Table(
    "accounts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("address", String(255), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("held", BigInteger, nullable=False, server_default="0"),
    Column("overdraft", Boolean, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("address", "currency"),
    CheckConstraint("held >= 0", name="held_not_negative"),
    CheckConstraint("overdraft OR balance >= held", name="no_overdraft"),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("description", String(255), nullable=False),
    Column("reference_id", String(64), nullable=False),
    Column("metadata_json", Text, nullable=False),
    Column("postings_json", Text, nullable=False),
    # Who made it: "service:<name>", "user:<id>" or "admin:<id>". Users never see it.
    Column("initiator", String(160), nullable=False),
    Column("service", String(64), nullable=True),
    Column("internal_notes", Text, nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "reference_id"),
    Index(None, "created_at"),
    Index(None, "service", "created_at"),
)

entries = Table(
    "entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("posting_index", SmallInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("amount <> 0", name="amount_not_zero"),
    Index(None, "account_id", "id"),
    Index(None, "transaction_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(160), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", SmallInteger, nullable=False),
    Column("response_body", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "expires_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("service", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    # Set when the key is rotated: it keeps working until then (the grace period).
    Column("expires_at", UTCDateTime, nullable=True),
    Column("created_by", String(160), nullable=True),
)

holds = Table(
    "holds",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("address", String(255), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("destination", String(255), nullable=False),
    # held, captured, voided, expired
    Column("status", String(16), nullable=False),
    Column("service", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("description", String(255), nullable=False),
    Column("reference_id", String(64), nullable=False),
    Column("metadata_json", Text, nullable=False),
    Column("captured_amount", BigInteger, nullable=False, server_default="0"),
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("captured_amount >= 0 AND captured_amount <= amount",
                    name="captured_within_amount"),
    Index(None, "status", "expires_at"),
    Index(None, "address", "currency"),
)

user_agencies = Table(
    "user_agencies",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("agency_id", String(128), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "agency_id"),
)

gifts = Table(
    "gifts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=False),
    Column("from_user_id", String(128), nullable=False),
    Column("to_user_id", String(128), nullable=False),
    Column("gift_type", String(32), nullable=True),
    Column("currency", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("receiver_amount", BigInteger, nullable=False),
    Column("agency_id", String(128), nullable=True),
    Column("agency_amount", BigInteger, nullable=False),
    Column("platform_fee", BigInteger, nullable=False),
    Column("message", String(500), nullable=True),
    Column("context_id", String(128), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("receiver_amount + agency_amount + platform_fee = amount",
                    name="split_is_whole"),
    Index(None, "from_user_id", "id"),
    Index(None, "to_user_id", "id"),
    Index(None, "agency_id", "created_at"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    # user, merchant, admin, auditor
    Column("role", String(16), nullable=False, server_default="user"),
    Column("totp_secret", String(64), nullable=True),
    Column("totp_enabled", Boolean, nullable=False, server_default="0"),
    Column("recovery_codes_json", Text, nullable=True),  # SHA-256 hashes of unused codes
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("family_id", String(36), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("mfa", Boolean, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index(None, "family_id"),
    Index(None, "user_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(160), nullable=False),
    Column("actor_role", String(16), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(255), nullable=True),
    Column("details_json", Text, nullable=False),
    Column("ip", String(64), nullable=True),
    Index(None, "actor", "id"),
    Index(None, "action", "id"),
)

adjustments = Table(
    "adjustments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("direction", String(8), nullable=False),  # credit, debit
    Column("reason", String(500), nullable=False),
    # pending, applied, rejected, failed
    Column("status", String(16), nullable=False),
    Column("requested_by", String(160), nullable=False),
    Column("decided_by", String(160), nullable=True),
    Column("decision_note", String(500), nullable=True),
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    Index(None, "status", "created_at"),
)

reversals = Table(
    "reversals",
    metadata,
    Column("original_id", String(36), ForeignKey("transactions.id"), primary_key=True),
    Column("reversal_id", String(36), ForeignKey("transactions.id"), nullable=False,
           unique=True),
    Column("reversed_by", String(160), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

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

withdrawals = Table(
    "withdrawals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("hold_id", String(36), nullable=False, unique=True),
    Column("destination_json", Text, nullable=False),
    # pending, cancelled, rejected, expired, approved (captured, payout not confirmed), paid
    Column("status", String(16), nullable=False),
    Column("reason", String(500), nullable=True),
    Column("decided_by", String(160), nullable=True),
    Column("transaction_id", String(36), nullable=True),
    Column("payout_provider", String(16), nullable=True),
    Column("payout_reference", String(255), nullable=True),
    Column("payout_error", String(500), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
    Index(None, "user_id", "id"),
    Index(None, "status", "id"),
    Index(None, "user_id", "currency", "created_at"),
)

kyc_profiles = Table(
    "kyc_profiles",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("tier", SmallInteger, nullable=False, server_default="0"),
    Column("updated_at", UTCDateTime, nullable=False),
)

kyc_submissions = Table(
    "kyc_submissions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("tier", SmallInteger, nullable=False),
    # References to documents kept elsewhere, never the images.
    Column("data_json", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending, approved, rejected
    Column("reason", String(500), nullable=True),
    Column("reviewed_by", String(160), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("reviewed_at", UTCDateTime, nullable=True),
    Index(None, "user_id", "id"),
    Index(None, "status", "id"),
)

# Per account, the total of the entries of a history month detached for archiving
# (coinpurse.partitions; migration 0100): a balance equals these plus its live entries.
archived_entry_totals = Table(
    "archived_entry_totals",
    metadata,
    Column("partition_name", String(63), primary_key=True),
    Column("account_id", BigInteger, primary_key=True),
    Column("total", BigInteger, nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("archived_at", UTCDateTime, nullable=False),
    Index("ix_archived_entry_totals_account_id", "account_id"),
)
