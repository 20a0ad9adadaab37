"""exchange treasury: treasury withdrawals and exchange orders

Revision ID: exchange_treasury_0001
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "exchange_treasury_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("exchange_treasury",)
depends_on: str | Sequence[str] | None = None

S = "exchange"


def upgrade() -> None:
    op.create_table(
        "treasury_withdrawals",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(42), nullable=False),
        sa.Column("amount", sa.Numeric(78, 0), nullable=False),
        sa.Column("to_address", sa.String(42), nullable=False),
        sa.Column("exchange", sa.String(20), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("requested_by", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("approved_by", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_treasury_withdrawals")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_treasury_withdrawals_amount_positive")),
        schema=S,
    )
    op.create_table(
        "orders",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("exchange", sa.String(20), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("order_type", sa.String(8), nullable=False),
        sa.Column("amount", sa.Numeric(36, 18), nullable=False),
        sa.Column("price", sa.Numeric(36, 18), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("exchange_order_id", sa.String(100), nullable=True),
        sa.Column("filled", sa.Numeric(36, 18), nullable=True),
        sa.Column("error_code", sa.String(40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("details", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("exchange", "exchange_order_id", name=op.f("uq_orders_exchange_exchange_order_id")),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("orders", schema=S)
    op.drop_table("treasury_withdrawals", schema=S)
