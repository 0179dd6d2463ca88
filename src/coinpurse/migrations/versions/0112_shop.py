"""shop: products, orders, refunds (issue 12)

Revision ID: 0112_shop
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0112_shop"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("merchant_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("stock", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.CheckConstraint("price > 0", name=op.f("ck_products_price_positive")),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_products_stock_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
    )
    op.create_index(op.f("ix_products_merchant_id_id"), "products", ["merchant_id", "id"])
    op.create_index(op.f("ix_products_active_id"), "products", ["active", "id"])
    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("buyer_id", sa.String(length=128), nullable=False),
        sa.Column("merchant_id", sa.String(length=128), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("product_name", sa.String(length=120), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fee", sa.BigInteger(), nullable=False),
        sa.Column("restocked_quantity", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("quantity > 0 AND unit_price > 0 AND amount > 0",
                           name=op.f("ck_orders_amounts_positive")),
        sa.CheckConstraint("fee >= 0 AND fee <= amount", name=op.f("ck_orders_fee_within_amount")),
        sa.CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount",
                           name=op.f("ck_orders_refunds_within_amount")),
        sa.CheckConstraint("refunded_fee >= 0 AND refunded_fee <= fee",
                           name=op.f("ck_orders_refunded_fee_within_fee")),
        sa.CheckConstraint("restocked_quantity >= 0 AND restocked_quantity <= quantity",
                           name=op.f("ck_orders_restock_within_quantity")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"],
                                name=op.f("fk_orders_product_id_products")),
        sa.ForeignKeyConstraint(["transaction_id"], ["transactions.id"],
                                name=op.f("fk_orders_transaction_id_transactions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    for columns in (["buyer_id", "id"], ["merchant_id", "id"], ["product_id", "id"],
                    ["status", "id"]):
        op.create_index(op.f(f"ix_orders_{'_'.join(columns)}"), "orders", columns)
    op.create_table(
        "order_refunds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("restock_quantity", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("refunded_by", sa.String(length=160), nullable=False),
        sa.Column("transaction_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint(
            "amount > 0 AND fee >= 0 AND fee <= amount AND restock_quantity >= 0",
            name=op.f("ck_order_refunds_amounts_valid")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"],
                                name=op.f("fk_order_refunds_order_id_orders")),
        sa.ForeignKeyConstraint(["transaction_id"], ["transactions.id"],
                                name=op.f("fk_order_refunds_transaction_id_transactions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_refunds")),
    )
    op.create_index(op.f("ix_order_refunds_order_id_id"), "order_refunds", ["order_id", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_order_refunds_order_id_id"), table_name="order_refunds")
    op.drop_table("order_refunds")
    for columns in (["buyer_id", "id"], ["merchant_id", "id"], ["product_id", "id"],
                    ["status", "id"]):
        op.drop_index(op.f(f"ix_orders_{'_'.join(columns)}"), table_name="orders")
    op.drop_table("orders")
    op.drop_index(op.f("ix_products_active_id"), table_name="products")
    op.drop_index(op.f("ix_products_merchant_id_id"), table_name="products")
    op.drop_table("products")
