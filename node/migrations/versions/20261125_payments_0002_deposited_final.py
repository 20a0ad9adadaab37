"""payments: deposited_final (final transfers to the deposit address), the sweeper's index on it

Revision ID: payments_0002
Revises: payments_0001
Create Date: 2026-11-25

The sweeper used to pick payments with ``received_final > swept``, but ``received_final`` also counts
money paid with the gateway's ``pay``, which never sits at the deposit address: such payments were
swept again and again for nothing and stayed in ``ix_payments_unswept`` forever. ``deposited_final``
is the sum of the payment's FINAL receipts of kind TRANSFER (``states.recompute`` keeps it); the
partial index now holds ``deposited_final > swept``. Existing rows are backfilled from the receipts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "payments_0002"
down_revision: str | None = "payments_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# :payment_ids NULL = every payment (the migration); tests pass their own payments. Payments without a
# final transfer keep the column's default, 0.
BACKFILL_DEPOSITED_FINAL = """
UPDATE payments.payments p SET deposited_final = r.total
FROM (SELECT payment_id, sum(amount) AS total FROM payments.receipts
      WHERE kind = 'TRANSFER' AND final
        AND (CAST(:payment_ids AS uuid[]) IS NULL OR payment_id = ANY(CAST(:payment_ids AS uuid[])))
      GROUP BY payment_id) r
WHERE p.id = r.payment_id AND p.deposited_final IS DISTINCT FROM r.total
"""


def upgrade() -> None:
    op.add_column("payments", sa.Column("deposited_final", sa.Numeric(precision=78, scale=0),
                                        server_default=sa.text("0"), nullable=False), schema="payments")
    op.get_bind().execute(sa.text(BACKFILL_DEPOSITED_FINAL), {"payment_ids": None})
    op.drop_index("ix_payments_unswept", table_name="payments", schema="payments",
                  postgresql_where=sa.text("received_final > swept"))
    op.create_index("ix_payments_unswept", "payments", ["chain_id"], unique=False, schema="payments",
                    postgresql_where=sa.text("deposited_final > swept"))


def downgrade() -> None:
    op.drop_index("ix_payments_unswept", table_name="payments", schema="payments",
                  postgresql_where=sa.text("deposited_final > swept"))
    op.create_index("ix_payments_unswept", "payments", ["chain_id"], unique=False, schema="payments",
                    postgresql_where=sa.text("received_final > swept"))
    op.drop_column("payments", "deposited_final", schema="payments")
