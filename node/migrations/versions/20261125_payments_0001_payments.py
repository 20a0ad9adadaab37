"""payments, receipts, refunds, links, idempotency keys

Revision ID: payments_0001
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "payments_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("payments",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE payments.intent_seq START 1")
    op.create_table(
        "idempotency_keys",
        sa.Column("merchant_id", sa.UUID(), nullable=False),
        sa.Column("scope", sa.String(length=60), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "scope", "key", name=op.f("pk_idempotency_keys")),
        schema="payments",
    )
    op.create_table(
        "links",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("merchant_id", sa.UUID(), nullable=False),
        sa.Column("branch_id", sa.UUID(), nullable=True),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("allow_custom_amount", sa.Boolean(), nullable=False),
        sa.Column("min_amount", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("max_amount", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("allow_quantity", sa.Boolean(), nullable=False),
        sa.Column("max_quantity", sa.Integer(), nullable=False),
        sa.Column("reusable", sa.Boolean(), nullable=False),
        sa.Column("show_qr", sa.Boolean(), nullable=False),
        sa.Column("success_url", sa.Text(), nullable=True),
        sa.Column("cancel_url", sa.Text(), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("merchant_trade_no", sa.String(length=200), nullable=True),
        sa.Column("order_expire_minutes", sa.Integer(), nullable=True),
        sa.Column("expire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("usage_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('ACTIVE','INACTIVE')", name=op.f("ck_links_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
        sa.UniqueConstraint("slug", name=op.f("uq_links_slug")),
        schema="payments",
    )
    op.create_index("ix_links_merchant", "links", ["merchant_id", "created_at"], unique=False, schema="payments")
    op.create_table(
        "payments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("merchant_id", sa.UUID(), nullable=False),
        sa.Column("branch_id", sa.UUID(), nullable=True),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("payment_no", sa.String(length=30), nullable=False),
        sa.Column("merchant_trade_no", sa.String(length=200), nullable=True),
        sa.Column("amount", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("amount_units", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("fiat_cents", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("rate_source", sa.String(length=20), nullable=False),
        sa.Column("exchange_rate", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("exchange_fee_pct", sa.Numeric(precision=10, scale=4), nullable=False),
        sa.Column("platform_fee_pct", sa.Numeric(precision=10, scale=4), nullable=False),
        sa.Column("exchange_fee_units", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("platform_fee_units", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("provider", sa.String(length=10), nullable=False),
        sa.Column("provider_pay_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("customer_email", sa.String(length=320), nullable=True),
        sa.Column("customer_billing", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("goods", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("success_url", sa.Text(), nullable=True),
        sa.Column("cancel_url", sa.Text(), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("link_id", sa.UUID(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("risk_flags", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("expire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("onchain_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("merchant_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=False),
        sa.Column("rate_fixed", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=65), nullable=False),
        sa.Column("deposit_address", sa.String(length=42), nullable=False),
        sa.Column("received_seen", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("received_final", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("swept", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("refunded_units", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("payer", sa.String(length=42), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("sweep_tx", sa.String(length=66), nullable=True),
        sa.Column("sweep_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("late_decision", sa.String(length=10), nullable=True),
        sa.CheckConstraint(
            "status IN ('initiated', 'pending', 'paid', 'underpaid', 'overpaid', 'expired', 'late', 'failed', "
            "'refunded', 'partially_refunded')",
            name=op.f("ck_payments_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("deposit_address", name=op.f("uq_payments_deposit_address")),
        sa.UniqueConstraint("onchain_id", name=op.f("uq_payments_onchain_id")),
        sa.UniqueConstraint("payment_no", name=op.f("uq_payments_payment_no")),
        sa.UniqueConstraint("provider_pay_id", name=op.f("uq_payments_provider_pay_id")),
        schema="payments",
    )
    op.create_index(
        "ix_payments_customer", "payments", ["merchant_id", "customer_email", "created_at"], unique=False,
        schema="payments",
    )
    op.create_index(
        "ix_payments_merchant_created", "payments", ["merchant_id", "created_at"], unique=False, schema="payments"
    )
    op.create_index(
        "ix_payments_open_expiry",
        "payments",
        ["expire_at"],
        unique=False,
        schema="payments",
        postgresql_where=sa.text("status IN ('initiated','pending','underpaid')"),
    )
    op.create_index(
        "ix_payments_unswept",
        "payments",
        ["chain_id"],
        unique=False,
        schema="payments",
        postgresql_where=sa.text("received_final > swept"),
    )
    op.create_table(
        "receipts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("payment_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("payer", sa.String(length=42), nullable=False),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("after_expiry", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
        sa.UniqueConstraint(
            "chain_id", "block_hash", "log_index", name=op.f("uq_receipts_chain_id_block_hash_log_index")
        ),
        schema="payments",
    )
    op.create_index("ix_receipts_payment", "receipts", ["payment_id"], unique=False, schema="payments")
    op.create_table(
        "refunds",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("payment_id", sa.UUID(), nullable=False),
        sa.Column("merchant_id", sa.UUID(), nullable=False),
        sa.Column("amount_units", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("to_address", sa.String(length=42), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("onchain_ref", sa.LargeBinary(length=32), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("requested_by", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('REQUESTED', 'APPROVED', 'SUBMITTED', 'COMPLETED', 'FAILED', 'REJECTED')",
            name=op.f("ck_refunds_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("merchant_id", "idempotency_key", name=op.f("uq_refunds_merchant_id_idempotency_key")),
        schema="payments",
    )
    op.create_index("ix_refunds_payment", "refunds", ["payment_id"], unique=False, schema="payments")


def downgrade() -> None:
    op.drop_index("ix_payments_customer", table_name="payments", schema="payments")
    op.drop_index("ix_refunds_payment", table_name="refunds", schema="payments")
    op.drop_table("refunds", schema="payments")
    op.drop_index("ix_receipts_payment", table_name="receipts", schema="payments")
    op.drop_table("receipts", schema="payments")
    op.drop_index(
        "ix_payments_unswept",
        table_name="payments",
        schema="payments",
        postgresql_where=sa.text("received_final > swept"),
    )
    op.drop_index(
        "ix_payments_open_expiry",
        table_name="payments",
        schema="payments",
        postgresql_where=sa.text("status IN ('initiated','pending','underpaid')"),
    )
    op.drop_index("ix_payments_merchant_created", table_name="payments", schema="payments")
    op.drop_table("payments", schema="payments")
    op.drop_index("ix_links_merchant", table_name="links", schema="payments")
    op.drop_table("links", schema="payments")
    op.drop_table("idempotency_keys", schema="payments")
    op.execute("DROP SEQUENCE payments.intent_seq")
