"""webhooks: signing keys, endpoints, deliveries, attempts

Revision ID: webhooks_0001
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "webhooks_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("webhooks",)
depends_on: str | Sequence[str] | None = None

OPEN = "status IN ('PENDING', 'DELIVERING', 'FAILED')"


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("merchant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("private_key_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
        schema="webhooks",
    )
    op.create_index(op.f("ix_signing_keys_merchant_id"), "signing_keys", ["merchant_id"], schema="webhooks")
    op.create_index("uq_signing_keys_active", "signing_keys", ["merchant_id"], unique=True, schema="webhooks",
                    postgresql_where=sa.text("retired_at IS NULL"))

    op.create_table(
        "endpoints",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("merchant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.String(length=100)), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("is_sdk", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoints")),
        schema="webhooks",
    )
    op.create_index(op.f("ix_endpoints_merchant_id"), "endpoints", ["merchant_id"], schema="webhooks")
    op.create_index("uq_endpoints_sdk", "endpoints", ["merchant_id"], unique=True, schema="webhooks",
                    postgresql_where=sa.text("is_sdk"))

    op.create_table(
        "deliveries",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("endpoint_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("merchant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("ordering_key", sa.String(length=200), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhooks.endpoints.id"], ondelete="CASCADE",
                                name=op.f("fk_deliveries_endpoint_id_endpoints")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("seq", name=op.f("uq_deliveries_seq")),
        schema="webhooks",
    )
    op.create_index("uq_deliveries_event_id_endpoint_id", "deliveries", ["event_id", "endpoint_id"], unique=True,
                    schema="webhooks")
    op.create_index("ix_deliveries_due", "deliveries", ["next_attempt_at"], schema="webhooks",
                    postgresql_where=sa.text(OPEN))
    op.create_index("ix_deliveries_open_by_key", "deliveries", ["endpoint_id", "ordering_key", "occurred_at", "seq"],
                    schema="webhooks", postgresql_where=sa.text(f"ordering_key IS NOT NULL AND {OPEN}"))
    op.create_index("ix_deliveries_merchant_id_created_at", "deliveries", ["merchant_id", "created_at"],
                    schema="webhooks")

    op.create_table(
        "attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("delivery_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhooks.deliveries.id"], ondelete="CASCADE",
                                name=op.f("fk_attempts_delivery_id_deliveries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
        schema="webhooks",
    )
    op.create_index(op.f("ix_attempts_delivery_id"), "attempts", ["delivery_id"], schema="webhooks")


def downgrade() -> None:
    op.drop_table("attempts", schema="webhooks")
    op.drop_table("deliveries", schema="webhooks")
    op.drop_table("endpoints", schema="webhooks")
    op.drop_table("signing_keys", schema="webhooks")
