"""The payments and bus migrations create exactly what the models say (payments_0002's
``deposited_final`` and the sweeper's partial index on it, payments_0005's partial customer index and
bus_0001's JSON payloads included)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

import node.db.registry  # noqa: F401
from node.db import Base
from node.resources import Resources


def _schema_of(item: tuple[Any, ...]) -> str | None:
    kind = item[0]
    if kind in ("add_table", "remove_table"):
        return str(item[1].schema)
    if kind.endswith("_column") or kind.startswith("modify_"):
        return str(item[1])
    table = getattr(item[1], "table", None)
    return str(table.schema) if table is not None else None


class TestMigrations:
    async def test_models_and_migrations_agree(self, resources: Resources) -> None:
        def compare(connection: Connection) -> list[Any]:
            context = MigrationContext.configure(connection, opts={
                "include_schemas": True, "compare_type": True,
                "include_name": lambda name, kind, parent: kind != "schema" or name in ("payments", "bus"),
            })
            return list(compare_metadata(context, Base.metadata))

        async with resources.db.engine.connect() as connection:
            diffs = await connection.run_sync(compare)
        mine = [d for d in diffs
                if any(_schema_of(i) in ("payments", "bus") for i in (d if isinstance(d, list) else [d]))]
        assert mine == [], mine

    async def test_the_sweepers_index_is_on_what_waits_at_deposit_addresses(self, resources: Resources) -> None:
        async with resources.db.engine.connect() as connection:
            definition = (await connection.execute(text(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'payments' AND indexname = 'ix_payments_unswept'"
            ))).scalar_one()
            default = (await connection.execute(text(
                "SELECT column_default FROM information_schema.columns WHERE table_schema = 'payments' "
                "AND table_name = 'payments' AND column_name = 'deposited_final'"))).scalar_one()
        assert "WHERE (deposited_final > swept)" in definition
        assert default == "0"  # the API's hot-path insert does not name the column

    async def test_the_customer_index_holds_payments_with_an_email_and_serves_the_risk_count(
            self, resources: Resources) -> None:
        from node.payments.service import _CUSTOMER_RISK_SQL

        pool = await resources.db.driver_pool()
        async with pool.acquire() as connection:
            definition = await connection.fetchval(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'payments' AND indexname = 'ix_payments_customer'")
            async with connection.transaction():
                await connection.execute("SET LOCAL enable_seqscan = off")
                plan = "\n".join(r[0] for r in await connection.fetch(
                    "EXPLAIN " + _CUSTOMER_RISK_SQL.replace("$1", "gen_random_uuid()").replace("$2", "'a@b.lk'")
                    .replace("$3", "'test'")))
            payload_type = await connection.fetchval(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = 'bus' "
                "AND table_name = 'outbox' AND column_name = 'payload'")
        assert "WHERE (customer_email IS NOT NULL)" in definition
        assert "ix_payments_customer" in plan
        assert payload_type == "json"
