"""settlement: merchant and treasury balances projected from final chain events

Revision ID: settlement_0001
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "settlement_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("settlement",)
depends_on: str | Sequence[str] | None = None

AMOUNT = sa.Numeric(78, 0)


def _amounts(*names: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(name, AMOUNT, server_default="0", nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "merchant_balances",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("merchant_key", sa.LargeBinary(32), nullable=False),
        sa.Column("token", sa.String(42), nullable=False),
        *_amounts("available", "credited_total", "fees_total", "withdrawn_total", "refunded_total",
                  "settled_total"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "merchant_key", "token", name=op.f("pk_merchant_balances")),
        sa.CheckConstraint("available >= 0", name=op.f("ck_merchant_balances_available_not_negative")),
        schema="settlement",
    )
    op.create_table(
        "treasury_balances",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(42), nullable=False),
        *_amounts("available", "fees_total", "settled_total", "withdrawn_total"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "token", name=op.f("pk_treasury_balances")),
        sa.CheckConstraint("available >= 0", name=op.f("ck_treasury_balances_available_not_negative")),
        schema="settlement",
    )


def downgrade() -> None:
    op.drop_table("treasury_balances", schema="settlement")
    op.drop_table("merchant_balances", schema="settlement")
