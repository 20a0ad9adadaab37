"""payments: refunds reviewed by an administrator (PENDING_APPROVAL, who decided, why)

Revision ID: payments_0003
Revises: payments_0002
Create Date: 2026-12-07

A refund to an address other than the payer's, above the approval threshold, or of a payment paid by
plain transfer (maybe from an exchange's hot wallet) waits in PENDING_APPROVAL for an administrator;
``review_reason`` says why, ``decided_by`` / ``decided_at`` / ``decision_note`` record the decision.
The status column grows to hold the new state's name.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "payments_0003"
down_revision: str | None = "payments_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "status IN ('REQUESTED', 'APPROVED', 'SUBMITTED', 'COMPLETED', 'FAILED', 'REJECTED')"
NEW = "status IN ('REQUESTED', 'PENDING_APPROVAL', 'APPROVED', 'SUBMITTED', 'COMPLETED', 'FAILED', 'REJECTED')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_refunds_status"), "refunds", schema="payments", type_="check")
    op.alter_column("refunds", "status", type_=sa.String(length=20), existing_type=sa.String(length=12),
                    existing_nullable=False, schema="payments")
    op.create_check_constraint(op.f("ck_refunds_status"), "refunds", sa.text(NEW), schema="payments")
    op.add_column("refunds", sa.Column("review_reason", sa.Text(), nullable=True), schema="payments")
    op.add_column("refunds", sa.Column("decided_by", sa.UUID(), nullable=True), schema="payments")
    op.add_column("refunds", sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True), schema="payments")
    op.add_column("refunds", sa.Column("decision_note", sa.Text(), nullable=True), schema="payments")
    op.create_index("ix_refunds_status", "refunds", ["status", "created_at"], unique=False, schema="payments",
                    postgresql_where=sa.text("status IN ('PENDING_APPROVAL', 'APPROVED')"))


def downgrade() -> None:
    op.drop_index("ix_refunds_status", table_name="refunds", schema="payments",
                  postgresql_where=sa.text("status IN ('PENDING_APPROVAL', 'APPROVED')"))
    for column in ("decision_note", "decided_at", "decided_by", "review_reason"):
        op.drop_column("refunds", column, schema="payments")
    op.drop_constraint(op.f("ck_refunds_status"), "refunds", schema="payments", type_="check")
    # refunds still waiting for a decision cannot be represented before this revision
    op.execute("UPDATE payments.refunds SET status = 'REJECTED' WHERE status = 'PENDING_APPROVAL'")
    op.alter_column("refunds", "status", type_=sa.String(length=12), existing_type=sa.String(length=20),
                    existing_nullable=False, schema="payments")
    op.create_check_constraint(op.f("ck_refunds_status"), "refunds", sa.text(OLD), schema="payments")
