"""notifications: e-mail template versions, preferences, notification log

Revision ID: notifications_0001
Revises: 0001
Create Date: 2026-11-24

The shipped default templates (node/notifications/templates/) are stored as
version 1 on first use, so a later release's defaults never overwrite an edit.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "notifications_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("notifications",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_templates",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_templates")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_email_templates_name_version")),
        schema="notifications",
    )
    op.create_index("uq_email_templates_active", "email_templates", ["name"], unique=True, schema="notifications",
                    postgresql_where=sa.text("active"))

    op.create_table(
        "preferences",
        sa.Column("merchant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "category", name=op.f("pk_preferences")),
        schema="notifications",
    )

    op.create_table(
        "notifications",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("source_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("template", sa.String(length=100), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("merchant_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("body_text", sa.Text(), nullable=True),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("source_id", "template", "recipient",
                            name=op.f("uq_notifications_source_id_template_recipient")),
        schema="notifications",
    )
    op.create_index("ix_notifications_due", "notifications", ["next_attempt_at"], schema="notifications",
                    postgresql_where=sa.text("status IN ('PENDING', 'SENDING', 'RETRYING')"))
    op.create_index("ix_notifications_merchant_id_created_at", "notifications", ["merchant_id", "created_at"],
                    schema="notifications")
    op.create_index("ix_notifications_created_at", "notifications", ["created_at"], schema="notifications")


def downgrade() -> None:
    op.drop_table("notifications", schema="notifications")
    op.drop_table("preferences", schema="notifications")
    op.drop_table("email_templates", schema="notifications")
