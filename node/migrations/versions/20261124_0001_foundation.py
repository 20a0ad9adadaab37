"""foundation: domain schemas, outbox, processed messages

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMAS = ("bus", "chain", "merchants", "payments", "settlement", "webhooks",
           "exchange", "subscriptions", "notifications", "admin")


def upgrade() -> None:
    for schema in SCHEMAS:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("message_id", postgresql.UUID(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
        schema="bus",
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["id"], unique=False, schema="bus",
                    postgresql_where=sa.text("published_at IS NULL"))
    # wake the relays as soon as a transaction with outbox rows commits
    op.execute("""
        CREATE FUNCTION bus.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('bus_outbox', ''); RETURN NULL; END $$
    """)
    op.execute("""
        CREATE TRIGGER outbox_notify AFTER INSERT ON bus.outbox
        FOR EACH STATEMENT EXECUTE FUNCTION bus.notify_outbox()
    """)
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("message_id", postgresql.UUID(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "message_id", name=op.f("pk_processed_messages")),
        schema="bus",
    )


def downgrade() -> None:
    op.drop_table("processed_messages", schema="bus")
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON bus.outbox")
    op.execute("DROP FUNCTION IF EXISTS bus.notify_outbox()")
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema="bus")
    op.drop_table("outbox", schema="bus")
    for schema in reversed(SCHEMAS):
        op.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
