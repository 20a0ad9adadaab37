"""exchange rates: history, overrides, oracle posts

Revision ID: exchange_0001
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "exchange_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("exchange",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oracle_posts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oracle_posts")),
        schema="exchange",
    )
    op.create_table(
        "rate_overrides",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("base", sa.String(length=10), nullable=False),
        sa.Column("quote", sa.String(length=10), nullable=False),
        sa.Column("rate", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("admin_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_overrides")),
        schema="exchange",
    )
    op.create_index(
        "ix_rate_overrides_pair", "rate_overrides", ["base", "quote", "created_at"], unique=False, schema="exchange"
    )
    op.create_table(
        "rates",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("base", sa.String(length=10), nullable=False),
        sa.Column("quote", sa.String(length=10), nullable=False),
        sa.Column("rate", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rates")),
        schema="exchange",
    )
    op.create_index("ix_rates_pair_fetched", "rates", ["base", "quote", "fetched_at"], unique=False, schema="exchange")


def downgrade() -> None:
    op.drop_index("ix_rates_pair_fetched", table_name="rates", schema="exchange")
    op.drop_table("rates", schema="exchange")
    op.drop_index("ix_rate_overrides_pair", table_name="rate_overrides", schema="exchange")
    op.drop_table("rate_overrides", schema="exchange")
    op.drop_table("oracle_posts", schema="exchange")
