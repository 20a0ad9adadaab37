"""settlement: ledger, withdrawals, payout addresses, bank accounts, schedules, batches, chain sends

Revision ID: settlement_0002
Revises: settlement_0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "settlement_0002"
down_revision: str | None = "settlement_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AMOUNT = sa.Numeric(78, 0)
S = "settlement"


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def _uuid(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, postgresql.UUID(as_uuid=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("merchant_key", sa.LargeBinary(32), nullable=True),
        sa.Column("token", sa.String(42), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("fee", AMOUNT, nullable=False),
        sa.Column("rate", sa.BigInteger(), nullable=True),
        sa.Column("fiat_cents", sa.BigInteger(), nullable=True),
        sa.Column("fee_fiat_cents", sa.BigInteger(), nullable=True),
        sa.Column("reference", sa.String(66), nullable=True),
        sa.Column("counterparty", sa.String(42), nullable=True),
        _now("recorded_at"),
        sa.PrimaryKeyConstraint("chain_id", "block_hash", "log_index", name=op.f("pk_ledger_entries")),
        schema=S,
    )
    op.create_index("ix_ledger_entries_merchant", "ledger_entries",
                    ["chain_id", "merchant_key", "block_number", "log_index"], schema=S)
    op.create_table(
        "withdrawals",
        _uuid("id"), _uuid("merchant_id"),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(42), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.Column("to_address", sa.String(42), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("needs_approval", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("requested_by", sa.String(64), nullable=True),
        _uuid("decided_by", True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        _now("created_at"),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawals")),
        sa.UniqueConstraint("merchant_id", "idempotency_key", name=op.f("uq_withdrawals_merchant_id_idempotency_key")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_withdrawals_amount_positive")),
        schema=S,
    )
    op.create_index(op.f("ix_withdrawals_merchant_id"), "withdrawals", ["merchant_id"], schema=S)
    op.create_index("ix_withdrawals_status", "withdrawals", ["status", "created_at"], schema=S)
    op.create_table(
        "payout_addresses",
        _uuid("id"), _uuid("merchant_id"),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        _uuid("requested_by", True),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_addresses")),
        schema=S,
    )
    op.create_index("ix_payout_addresses_merchant", "payout_addresses", ["merchant_id", "created_at"], schema=S)
    op.create_table(
        "bank_accounts",
        _uuid("id"), _uuid("merchant_id"),
        sa.Column("bank_name", sa.String(200), nullable=False),
        sa.Column("branch", sa.String(200), nullable=True),
        sa.Column("account_name", sa.String(200), nullable=False),
        sa.Column("account_number", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _uuid("verified_by", True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_accounts")),
        schema=S,
    )
    op.create_index(op.f("ix_bank_accounts_merchant_id"), "bank_accounts", ["merchant_id"], schema=S)
    op.create_table(
        "schedules",
        _uuid("merchant_id"),
        sa.Column("frequency", sa.String(12), nullable=False),
        sa.Column("interval_days", sa.Integer(), nullable=True),
        _uuid("bank_account_id", True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_schedules")),
        schema=S,
    )
    op.create_table(
        "batches",
        _uuid("id"), _uuid("merchant_id"),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(42), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        _uuid("bank_account_id"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("rate_fixed", sa.BigInteger(), nullable=True),
        sa.Column("fiat_cents", sa.BigInteger(), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("tx_hash", sa.String(66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("bank_reference", sa.String(100), nullable=True),
        sa.Column("paid_on", sa.Date(), nullable=True),
        _uuid("paid_by", True),
        sa.Column("reason", sa.Text(), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.UniqueConstraint("merchant_id", "idempotency_key", name=op.f("uq_batches_merchant_id_idempotency_key")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_batches_amount_positive")),
        schema=S,
    )
    op.create_index(op.f("ix_batches_merchant_id"), "batches", ["merchant_id"], schema=S)
    op.create_table(
        "chain_sends",
        _uuid("id"),
        sa.Column("purpose", sa.String(24), nullable=False),
        _uuid("object_id"),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(42), nullable=False),
        sa.Column("to_address", sa.String(42), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("tx_hashes", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("raw_txs", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("mined_tx_hash", sa.String(66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _now("created_at"),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_sends")),
        sa.UniqueConstraint("purpose", "object_id", name=op.f("uq_chain_sends_purpose_object_id")),
        schema=S,
    )


def downgrade() -> None:
    for table in ("chain_sends", "batches", "schedules", "bank_accounts", "payout_addresses", "withdrawals",
                  "ledger_entries"):
        op.drop_table(table, schema=S)
