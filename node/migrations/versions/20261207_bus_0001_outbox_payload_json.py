r"""bus: outbox payloads as JSON text, not JSONB

Revision ID: bus_0001
Revises: 0001
Create Date: 2026-12-07

Nothing queries inside an outbox message: the relay reads it whole and publishes it. JSONB parsed
and rebuilt every payload on insert, about 18 us of PostgreSQL's CPU for a payment's 1.5 kB
announcement (a third of the payment insert). ``json`` only checks it. The table holds unpublished
messages and those published within the retention, so the rewrite is short.

Downgrading fails on a payload that holds a ``\u0000`` escape, which ``json`` accepts and ``jsonb``
refuses: delete such messages (``WHERE payload::text LIKE '%\\u0000%'``) once they are published.
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "bus_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("bus",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("outbox", "payload", type_=postgresql.JSON(), postgresql_using="payload::json", schema="bus",
                    existing_type=postgresql.JSONB(), existing_nullable=False)


def downgrade() -> None:
    op.alter_column("outbox", "payload", type_=postgresql.JSONB(), postgresql_using="payload::jsonb", schema="bus",
                    existing_type=postgresql.JSON(), existing_nullable=False)
