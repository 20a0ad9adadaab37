"""settlement: LKR for ledger refunds and withdrawals indexed before they were priced

Revision ID: settlement_0003
Revises: settlement_0002
Create Date: 2026-11-25

The indexer now prices refund and withdrawal rows as it stores them (node.settlement.repository.
price_outflows). Rows stored earlier get the same prices here: a refund at the rate locked on the
payment it refunds, else (and a withdrawal) at the oracle's latest AnswerUpdated at or before the
row. Data only; reads payments.payments and chain.logs, hence the dependencies.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "settlement_0003"
down_revision: str | None = "settlement_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = ("payments_0001", "chain_0001")

# :chain_id NULL = every chain (the migration); tests pass their own chain
_MINE = "e.kind IN ('REFUND', 'WITHDRAWAL') AND (CAST(:chain_id AS integer) IS NULL OR e.chain_id = :chain_id)"

PRICE_OUTFLOWS = [
    f"""UPDATE settlement.ledger_entries e SET rate = p.rate_fixed
    FROM payments.payments p
    WHERE {_MINE} AND e.kind = 'REFUND' AND e.rate IS NULL AND e.fiat_cents IS NULL
      AND e.reference = '0x' || encode(p.onchain_id, 'hex') AND p.rate_fixed BETWEEN 1 AND 9223372036854775807""",
    # the answer is the indexed topic `current` (int256); only positive answers that fit a bigint
    f"""UPDATE settlement.ledger_entries e SET rate = (
        SELECT CASE WHEN substr(l.topics[2], 3, 48) = repeat('0', 48)
                     AND ('x' || right(l.topics[2], 16))::bit(64)::bigint > 0
                    THEN ('x' || right(l.topics[2], 16))::bit(64)::bigint END
        FROM chain.logs l
        WHERE l.chain_id = e.chain_id AND l.event = 'AnswerUpdated'
          AND (l.block_number, l.log_index) <= (e.block_number, e.log_index)
        ORDER BY l.block_number DESC, l.log_index DESC LIMIT 1)
    WHERE {_MINE} AND e.rate IS NULL AND e.fiat_cents IS NULL""",
    # signed like the amount, rounded toward zero (as the indexer does)
    f"""UPDATE settlement.ledger_entries e SET fiat_cents = -div(-e.amount * e.rate, 10::numeric ^ 24)
    WHERE {_MINE} AND e.rate IS NOT NULL AND e.fiat_cents IS NULL""",
]


def upgrade() -> None:
    for statement in PRICE_OUTFLOWS:
        op.execute(sa.text(statement).bindparams(chain_id=None))


def downgrade() -> None:
    pass  # the prices are facts about indexed events; nothing to undo
