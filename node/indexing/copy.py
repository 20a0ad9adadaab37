"""COPY in text format for the indexer's batches (the handlers use it too).

A batch's rows are built as text lines by the caller: every value the indexer writes is a
number, a hex string, an address or a fixed word, so nothing needs escaping, and building a
line is several times cheaper than asyncpg's per-record binary encoder (Python ints into
``numeric`` especially)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from node.db.bulk import driver_connection

NULL = "\\N"


def bytea(value: bytes) -> str:
    """A ``bytea`` value in COPY text (the backslash of ``\\x`` escaped)."""
    return "\\\\x" + value.hex()


async def copy_new_rows(session: AsyncSession, schema: str, table: str, columns: Sequence[str], payload: bytes
                        ) -> None:
    """Inserts the rows of ``payload`` (COPY text, one line per row) skipping those whose unique
    key is stored already: straight COPY when all are new (the usual case, in a savepoint),
    else through a staging table with ``ON CONFLICT DO NOTHING`` (a repeated batch)."""
    if not payload:
        return
    driver = await driver_connection(session)
    try:
        async with driver.transaction():
            await driver.copy_to_table(table, schema_name=schema, source=io.BytesIO(payload), columns=columns)
        return
    except asyncpg.UniqueViolationError:
        pass
    staging = f"staging_{schema}_{table}"
    await driver.execute(
        f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" (LIKE {schema}.{table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
    )
    await driver.execute(f'TRUNCATE "{staging}"')
    await driver.copy_to_table(staging, source=io.BytesIO(payload), columns=columns)
    names = ", ".join(f'"{c}"' for c in columns)
    await driver.execute(
        f'INSERT INTO {schema}.{table} ({names}) SELECT {names} FROM "{staging}" ON CONFLICT DO NOTHING'
    )
