"""payments: ix_payments_customer covers payments with a customer e-mail only

Revision ID: payments_0005
Revises: payments_0004
Create Date: 2026-12-07

Only the customer risk rules read it, always for one e-mail; payments created without one (most
SDK payments) no longer pay for an index entry on insert.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "payments_0005"
down_revision: str | None = "payments_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_payments_customer", table_name="payments", schema="payments")
    op.create_index("ix_payments_customer", "payments", ["merchant_id", "customer_email", "created_at"],
                    unique=False, schema="payments", postgresql_where=sa.text("customer_email IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_payments_customer", table_name="payments", schema="payments")
    op.create_index("ix_payments_customer", "payments", ["merchant_id", "customer_email", "created_at"],
                    unique=False, schema="payments")
