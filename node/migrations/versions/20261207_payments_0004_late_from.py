"""payments: late_from (the closed state a late payment came from)

Revision ID: payments_0004
Revises: payments_0003
Create Date: 2026-12-07

Money that arrives after a payment's deadline (by the including block's timestamp) makes it ``late``
whether it had expired unpaid or failed underpaid; ``late_from`` remembers which, so the wire status
stays what it was (EXPIRED or FAILED) and a reorg of the late money returns the payment there.
Existing late payments are backfilled from their receipts: any money before the deadline -> failed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "payments_0004"
down_revision: str | None = "payments_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("late_from", sa.String(length=10), nullable=True), schema="payments")
    op.execute("""
        UPDATE payments.payments p SET late_from = CASE WHEN EXISTS (
            SELECT 1 FROM payments.receipts r WHERE r.payment_id = p.id AND NOT r.after_expiry)
            THEN 'failed' ELSE 'expired' END
        WHERE p.status = 'late'
    """)


def downgrade() -> None:
    op.drop_column("payments", "late_from", schema="payments")
