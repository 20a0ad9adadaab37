"""Alembic environment: async engine, every domain schema, one naming convention."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import node.db.registry  # noqa: F401  (fills the metadata)
from node.db.base import SCHEMAS, metadata

config = context.config


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    return type_ != "schema" or name in SCHEMAS


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=metadata, include_schemas=True,
        include_name=_include_name, compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def _in_thread() -> None:
    asyncio.run(_run_async())


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      include_schemas=True, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _in_thread()
    else:
        # called from inside a running loop (tests, `openpay dev`): run on a fresh loop in a thread
        import threading

        thread = threading.Thread(target=_in_thread)
        thread.start()
        thread.join()
