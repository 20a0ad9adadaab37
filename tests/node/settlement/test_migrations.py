"""The settlement and exchange-treasury migrations create exactly what the models say."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

import node.db.registry  # noqa: F401
from node.db import Base
from node.resources import Resources

OURS = {("settlement", t) for t in ("merchant_balances", "treasury_balances", "ledger_entries", "withdrawals",
                                    "payout_addresses", "bank_accounts", "schedules", "batches", "chain_sends")}
OURS |= {("exchange", "treasury_withdrawals"), ("exchange", "orders")}


def _table_of(item: tuple[Any, ...]) -> tuple[str | None, str] | None:
    """(schema, table) of one autogenerate difference."""
    kind = item[0]
    if kind in ("add_table", "remove_table"):
        return item[1].schema, item[1].name
    if kind.endswith("_column") or kind.startswith("modify_"):
        return item[1], item[2]
    table = getattr(item[1], "table", None)
    return (table.schema, table.name) if table is not None else None


def _ours(diff: Any) -> bool:
    items = diff if isinstance(diff, list) else [diff]
    return any(_table_of(item) in OURS for item in items)


class TestMigrations:
    async def test_models_and_migrations_agree(self, resources: Resources) -> None:
        def compare(connection: Connection) -> list[Any]:
            context = MigrationContext.configure(connection, opts={
                "include_schemas": True, "compare_type": True,
                "include_name": lambda name, kind, parent: kind != "schema" or name in ("settlement", "exchange"),
            })
            return list(compare_metadata(context, Base.metadata))

        async with resources.db.engine.connect() as connection:
            diffs = await connection.run_sync(compare)
        mine = [d for d in diffs if _ours(d)]
        assert mine == [], mine
