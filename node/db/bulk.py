"""Bulk writes for the indexer's batches: COPY instead of multi-row INSERT.

A multi-row ``INSERT ... VALUES`` is compiled anew for every batch size and is capped at 32,767
parameters; COPY streams any number of rows through the driver's binary encoder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncSession


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction.

    SQLAlchemy's adapter opens the asyncpg transaction lazily, on the first statement; without
    one, work done on the driver directly would commit on its own (found by the crash test).
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    if not driver.is_in_transaction():
        # the adapter's own BEGIN, which SQLAlchemy then commits (no extra statement); a statement
        # through the session does the same where the adapter lacks the method
        start = getattr(raw.dbapi_connection, "_start_transaction", None)
        if start is not None:
            await start()
        else:
            await session.execute(text("SELECT 1"))
    assert driver.is_in_transaction()
    return driver


async def copy_insert_ignoring_duplicates(
    session: AsyncSession, table: Table, rows: Sequence[Mapping[str, object]],
) -> None:
    """``INSERT ... ON CONFLICT DO NOTHING`` for many rows, through COPY into a staging table."""
    if not rows:
        return
    columns = list(rows[0])
    records = [tuple(r[c] for c in columns) for r in rows]
    driver = await driver_connection(session)
    try:
        async with driver.transaction():  # a savepoint: new rows (the usual case) go straight in
            await driver.copy_records_to_table(table.name, schema_name=table.schema, records=records,
                                               columns=columns)
        return
    except asyncpg.UniqueViolationError:
        pass
    staging = f"staging_{table.schema}_{table.name}"
    await driver.execute(
        f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" (LIKE {table.schema}.{table.name} INCLUDING DEFAULTS) '
        "ON COMMIT DELETE ROWS"
    )
    await driver.execute(f'TRUNCATE "{staging}"')
    await driver.copy_records_to_table(staging, records=records, columns=columns)
    names = ", ".join(f'"{c}"' for c in columns)
    await driver.execute(
        f'INSERT INTO {table.schema}.{table.name} ({names}) SELECT {names} FROM "{staging}" ON CONFLICT DO NOTHING'
    )
