"""chain: logs, blocks, cursors, reorgs

Revision ID: chain_0001
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "chain_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("chain",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "logs",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("transaction_hash", sa.String(66), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("topics", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "block_hash", "log_index", name=op.f("pk_logs")),
        schema="chain",
    )
    op.create_index(op.f("ix_logs_block_number"), "logs", ["block_number"], schema="chain")
    op.create_index("ix_logs_pending", "logs", ["chain_id", "block_number"], schema="chain",
                    postgresql_where=sa.text("NOT final"))
    op.create_table(
        "blocks",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(66), nullable=False),
        sa.Column("parent_hash", sa.String(66), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "number", name=op.f("pk_blocks")),
        schema="chain",
    )
    op.create_table(
        "cursors",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("finalized_number", sa.BigInteger(), nullable=False),
        sa.Column("head_number", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_cursors")),
        schema="chain",
    )
    op.create_table(
        "reorgs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("fork_block", sa.BigInteger(), nullable=False),
        sa.Column("old_head", sa.BigInteger(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("undone", postgresql.JSONB(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reorgs")),
        schema="chain",
    )


def downgrade() -> None:
    for table in ("reorgs", "cursors", "blocks", "logs"):
        op.drop_table(table, schema="chain")
