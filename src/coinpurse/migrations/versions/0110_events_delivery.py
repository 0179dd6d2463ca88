"""events delivery: webhook endpoints and deliveries, notifications, e-mails, balance
monitors (issue 10)

Revision ID: 0110_events_delivery
Revises: 0113_partitions
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0110_events_delivery"
down_revision = "0113_partitions"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events_json", sa.Text(), nullable=False),
        sa.Column("description", sa.String(255), server_default="", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128), nullable=True),
        sa.Column("previous_secret_expires_at", TS, nullable=True),
        sa.Column("created_by", sa.String(160), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("endpoint_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("lease_token", sa.String(36), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"], ondelete="CASCADE",
                                name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("endpoint_id", "event_id",
                            name=op.f("uq_webhook_deliveries_endpoint_id_event_id")),
    )
    op.create_index(op.f("ix_webhook_deliveries_status_next_attempt_at"),
                    "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_webhook_deliveries_endpoint_id_id"), "webhook_deliveries",
                    ["endpoint_id", "id"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("body", sa.String(1000), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("read_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("event_id", "user_id",
                            name=op.f("uq_notifications_event_id_user_id")),
    )
    op.create_index(op.f("ix_notifications_user_id_id"), "notifications", ["user_id", "id"])
    op.create_index(op.f("ix_notifications_user_id_read_at"), "notifications",
                    ["user_id", "read_at"])
    op.create_table(
        "email_outbox",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("notification_id", sa.String(36), nullable=False),
        sa.Column("to_address", sa.String(254), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("lease_token", sa.String(36), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_outbox")),
        sa.UniqueConstraint("notification_id", name=op.f("uq_email_outbox_notification_id")),
    )
    op.create_index(op.f("ix_email_outbox_status_next_attempt_at"), "email_outbox",
                    ["status", "next_attempt_at"])
    op.create_table(
        "balance_monitors",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("condition", sa.String(8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.String(255), server_default="", nullable=False),
        sa.Column("service", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_balance_monitors")),
    )
    op.create_index(op.f("ix_balance_monitors_address_currency"), "balance_monitors",
                    ["address", "currency"])


def downgrade() -> None:
    op.drop_table("balance_monitors")
    op.drop_table("email_outbox")
    op.drop_table("notifications")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
