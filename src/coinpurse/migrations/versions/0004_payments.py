"""top-ups (payment orders, webhook inbox, debts), withdrawals, KYC

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "payment_orders",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("provider_order_id", sa.String(length=255), nullable=True),
        sa.Column("provider_payment_id", sa.String(length=255), nullable=True),
        sa.Column("package_id", sa.String(length=32), nullable=True),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("bonus", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("price_currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("client_params_json", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("credit_transaction_id", sa.String(length=36), nullable=True),
        sa.Column("reversal_transaction_id", sa.String(length=36), nullable=True),
        sa.Column("reversed_amount", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("debt_amount", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("paid_at", TS, nullable=True),
        sa.Column("reversed_at", TS, nullable=True),
        sa.CheckConstraint("amount > 0 AND bonus >= 0 AND price > 0",
                           name=op.f("ck_payment_orders_amounts_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_orders")),
        sa.UniqueConstraint("provider", "provider_order_id",
                            name=op.f("uq_payment_orders_provider_provider_order_id")),
        sa.UniqueConstraint("user_id", "idempotency_key",
                            name=op.f("uq_payment_orders_user_id_idempotency_key")),
    )
    op.create_index(op.f("ix_payment_orders_user_id_id"), "payment_orders", ["user_id", "id"])
    op.create_index(op.f("ix_payment_orders_status_id"), "payment_orders", ["status", "id"])
    op.create_index(op.f("ix_payment_orders_provider_provider_payment_id"), "payment_orders",
                    ["provider", "provider_payment_id"])
    op.create_table(
        "webhook_inbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("order_id", sa.String(length=36), nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("processed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_inbox")),
        sa.UniqueConstraint("provider", "event_id",
                            name=op.f("uq_webhook_inbox_provider_event_id")),
    )
    op.create_index(op.f("ix_webhook_inbox_status_next_attempt_at"), "webhook_inbox",
                    ["status", "next_attempt_at"])
    op.create_table(
        "user_debts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("creditor", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_user_debts_amount_not_zero")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_debts")),
    )
    op.create_index(op.f("ix_user_debts_user_id_currency"), "user_debts",
                    ["user_id", "currency"])
    op.create_table(
        "withdrawals",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("hold_id", sa.String(length=36), nullable=False),
        sa.Column("destination_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("decided_by", sa.String(length=160), nullable=True),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        sa.Column("payout_provider", sa.String(length=16), nullable=True),
        sa.Column("payout_reference", sa.String(length=255), nullable=True),
        sa.Column("payout_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_withdrawals_amount_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawals")),
        sa.UniqueConstraint("hold_id", name=op.f("uq_withdrawals_hold_id")),
    )
    op.create_index(op.f("ix_withdrawals_user_id_id"), "withdrawals", ["user_id", "id"])
    op.create_index(op.f("ix_withdrawals_status_id"), "withdrawals", ["status", "id"])
    op.create_index(op.f("ix_withdrawals_user_id_currency_created_at"), "withdrawals",
                    ["user_id", "currency", "created_at"])
    op.create_table(
        "kyc_profiles",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("tier", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_kyc_profiles")),
    )
    op.create_table(
        "kyc_submissions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("reviewed_by", sa.String(length=160), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("reviewed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kyc_submissions")),
    )
    op.create_index(op.f("ix_kyc_submissions_user_id_id"), "kyc_submissions",
                    ["user_id", "id"])
    op.create_index(op.f("ix_kyc_submissions_status_id"), "kyc_submissions", ["status", "id"])


def downgrade() -> None:
    for table in ("kyc_submissions", "kyc_profiles", "withdrawals", "user_debts",
                  "webhook_inbox", "payment_orders"):
        op.drop_table(table)
