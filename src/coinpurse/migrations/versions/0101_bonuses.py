"""bonuses: promotions, bonuses and their changes, referrals, the sign-up queue (issue 11)

Revision ID: 0101_bonuses
Revises: 0115_reconcile
Create Date: 2026-12-08

Users who already have a wallet are entered in the sign-up queue as done: a sign-up bonus is
for users whose first wallet is created from now on.

On PostgreSQL ``transactions`` is partitioned (0113_partitions): its ``id`` alone is not
unique there, so the ``transaction_id`` columns have no foreign key on PostgreSQL (as for
the shop's orders); the ledger writes a bonus row in the same database transaction as the
transaction it names.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0101_bonuses"
down_revision = "0115_reconcile"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _to_transactions(name: str) -> list[sa.ForeignKeyConstraint]:
    """A foreign key to ``transactions.id``, where that column is unique (not PostgreSQL)."""
    if op.get_bind().dialect.name == "postgresql":
        return []
    return [sa.ForeignKeyConstraint(["transaction_id"], ["transactions.id"], name=op.f(name))]


def upgrade() -> None:
    op.create_table(
        "promotions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("percent_bp", sa.Integer(), nullable=True),
        sa.Column("max_bonus", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("min_deposit", sa.BigInteger(), nullable=True),
        sa.Column("wagering_multiplier", sa.Integer(), nullable=False),
        sa.Column("contributions_json", sa.Text(), nullable=False),
        sa.Column("default_contribution_bp", sa.Integer(), nullable=False),
        sa.Column("max_conversion", sa.BigInteger(), nullable=True),
        sa.Column("expires_in_days", sa.Integer(), nullable=False),
        sa.Column("starts_at", TS, nullable=True),
        sa.Column("ends_at", TS, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("claimable", sa.Boolean(), nullable=False),
        sa.Column("per_user_limit", sa.Integer(), nullable=True),
        sa.Column("budget", sa.BigInteger(), nullable=True),
        sa.Column("granted_total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("granted_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("granted_total >= 0 AND granted_count >= 0",
                           name=op.f("ck_promotions_granted_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotions")),
        sa.UniqueConstraint("code", name=op.f("uq_promotions_code")),
    )
    op.create_index(op.f("ix_promotions_kind_currency_active"), "promotions",
                    ["kind", "currency", "active"])
    op.create_table(
        "bonuses",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("promotion_id", sa.String(length=36), nullable=False),
        sa.Column("promotion_code", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=160), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("granted", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("wagering_required", sa.BigInteger(), nullable=False),
        sa.Column("wagered", sa.BigInteger(), nullable=False),
        sa.Column("contributions_json", sa.Text(), nullable=False),
        sa.Column("default_contribution_bp", sa.Integer(), nullable=False),
        sa.Column("max_conversion", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("converted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("forfeited", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.CheckConstraint("granted > 0 AND remaining >= 0 AND wagering_required >= 0 AND "
                           "wagered >= 0 AND converted >= 0 AND forfeited >= 0",
                           name=op.f("ck_bonuses_amounts_valid")),
        sa.ForeignKeyConstraint(["promotion_id"], ["promotions.id"],
                                name=op.f("fk_bonuses_promotion_id_promotions")),
        *_to_transactions("fk_bonuses_transaction_id_transactions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bonuses")),
        sa.UniqueConstraint("promotion_id", "user_id", "source",
                            name=op.f("uq_bonuses_promotion_id_user_id_source")),
    )
    for columns in (["user_id", "currency", "status"], ["user_id", "id"],
                    ["status", "expires_at"], ["promotion_id", "id"]):
        op.create_index(op.f(f"ix_bonuses_{'_'.join(columns)}"), "bonuses", columns)
    op.create_table(
        "bonus_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("bonus_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining_after", sa.BigInteger(), nullable=False),
        sa.Column("wagered_after", sa.BigInteger(), nullable=False),
        sa.Column("status_after", sa.String(length=16), nullable=False),
        sa.Column("reference_id", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("amount >= 0 AND remaining_after >= 0 AND wagered_after >= 0",
                           name=op.f("ck_bonus_changes_amounts_valid")),
        sa.ForeignKeyConstraint(["bonus_id"], ["bonuses.id"],
                                name=op.f("fk_bonus_changes_bonus_id_bonuses")),
        *_to_transactions("fk_bonus_changes_transaction_id_transactions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bonus_changes")),
    )
    for columns in (["bonus_id", "id"], ["transaction_id"], ["reference_id"]):
        op.create_index(op.f(f"ix_bonus_changes_{'_'.join(columns)}"), "bonus_changes",
                        columns)
    op.create_table(
        "referrals",
        sa.Column("referee_id", sa.String(length=128), nullable=False),
        sa.Column("referrer_id", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("referee_id <> referrer_id", name=op.f("ck_referrals_not_self")),
        sa.PrimaryKeyConstraint("referee_id", name=op.f("pk_referrals")),
    )
    op.create_index(op.f("ix_referrals_referrer_id"), "referrals", ["referrer_id"])
    op.create_table(
        "referral_rewards",
        sa.Column("referee_id", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["referee_id"], ["referrals.referee_id"],
                                name=op.f("fk_referral_rewards_referee_id_referrals")),
        *_to_transactions("fk_referral_rewards_transaction_id_transactions"),
        sa.PrimaryKeyConstraint("referee_id", name=op.f("pk_referral_rewards")),
    )
    op.create_table(
        "bonus_signups",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("done_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_bonus_signups")),
    )
    op.create_index(op.f("ix_bonus_signups_status_created_at"), "bonus_signups",
                    ["status", "created_at"])
    op.create_table(
        "promotion_orders",
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("promotion_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["promotion_id"], ["promotions.id"],
                                name=op.f("fk_promotion_orders_promotion_id_promotions")),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_promotion_orders")),
    )
    # Users with a wallet already signed up before sign-up bonuses existed.
    op.execute(
        "INSERT INTO bonus_signups (user_id, status, created_at, done_at) "
        "SELECT DISTINCT substr(address, 6), 'done', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP "
        "FROM accounts WHERE address LIKE 'user:%' AND address NOT LIKE 'user:%:%'")


def downgrade() -> None:
    op.drop_table("promotion_orders")
    op.drop_index(op.f("ix_bonus_signups_status_created_at"), table_name="bonus_signups")
    op.drop_table("bonus_signups")
    op.drop_table("referral_rewards")
    op.drop_index(op.f("ix_referrals_referrer_id"), table_name="referrals")
    op.drop_table("referrals")
    for columns in (["bonus_id", "id"], ["transaction_id"], ["reference_id"]):
        op.drop_index(op.f(f"ix_bonus_changes_{'_'.join(columns)}"), table_name="bonus_changes")
    op.drop_table("bonus_changes")
    for columns in (["user_id", "currency", "status"], ["user_id", "id"],
                    ["status", "expires_at"], ["promotion_id", "id"]):
        op.drop_index(op.f(f"ix_bonuses_{'_'.join(columns)}"), table_name="bonuses")
    op.drop_table("bonuses")
    op.drop_index(op.f("ix_promotions_kind_currency_active"), table_name="promotions")
    op.drop_table("promotions")
