"""All of the indexer's SQL: logs, headers, cursor, reorgs."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from node.db.bulk import driver_connection
from node.indexing.models import ChainBlock, ChainCursor, ChainLog, ChainReorg

LOG_COLUMNS = ("chain_id", "block_hash", "log_index", "block_number", "transaction_hash", "address",
               "topics", "data", "event", "final")


async def insert_logs(session: AsyncSession, payload: bytes, *, unseen: bool = False
                      ) -> set[tuple[str, int]] | None:
    """Stores logs with COPY (``payload``: lines of COPY text in ``LOG_COLUMNS`` order, made by
    ``indexer.follower.decode_rows``). Returns ``None`` when all were new, else the keys that were
    new (a repeat of an already stored range, e.g. after `openpay indexer resync`). ``unseen``: the
    caller knows none can be stored (blocks above every stored log): no savepoint to fall back on."""
    if not payload:
        return None
    driver = await driver_connection(session)
    if unseen:
        await driver.copy_to_table("logs", schema_name="chain", source=io.BytesIO(payload), columns=LOG_COLUMNS)
        return None
    try:
        async with driver.transaction():  # a savepoint: a repeat falls back without losing the batch
            await driver.copy_to_table("logs", schema_name="chain", source=io.BytesIO(payload), columns=LOG_COLUMNS)
        return None
    except asyncpg.UniqueViolationError:
        pass
    await driver.execute(
        "CREATE TEMP TABLE IF NOT EXISTS staging_logs (LIKE chain.logs) ON COMMIT DELETE ROWS"
    )
    await driver.execute("TRUNCATE staging_logs")
    await driver.copy_to_table("staging_logs", source=io.BytesIO(payload), columns=LOG_COLUMNS)
    inserted = await driver.fetch(
        "INSERT INTO chain.logs SELECT * FROM staging_logs ON CONFLICT DO NOTHING RETURNING block_hash, log_index"
    )
    return {(r["block_hash"], r["log_index"]) for r in inserted}


async def promote_final(session: AsyncSession, chain_id: int, up_to: int, *, above: int = -1) -> list[ChainLog]:
    """Marks pending logs of blocks ``above+1..up_to`` final; returns them in chain order. The
    caller bounds the window from below (logs up to the last finalized block are final already):
    unbounded, the block-number index would walk every stored log."""
    rows = (await session.execute(
        update(ChainLog)
        .where(ChainLog.chain_id == chain_id, ChainLog.final.is_(False), ChainLog.block_number > above,
               ChainLog.block_number <= up_to)
        .values(final=True)
        .returning(ChainLog)
    )).scalars().all()
    return sorted(rows, key=lambda r: (r.block_number, r.log_index))


async def highest_pending_block(session: AsyncSession, chain_id: int) -> int:
    """The highest block holding a log not final yet, -1 if none (the partial index answers)."""
    top = (await session.execute(
        select(func.max(ChainLog.block_number)).where(ChainLog.chain_id == chain_id, ChainLog.final.is_(False))
    )).scalar_one_or_none()
    return -1 if top is None else int(top)


async def highest_stored_block(session: AsyncSession, chain_id: int) -> int:
    """The highest block with a stored log, -1 if none."""
    top = (await session.execute(
        select(func.max(ChainLog.block_number)).where(ChainLog.chain_id == chain_id))).scalar_one_or_none()
    return -1 if top is None else int(top)


async def pending_logs_after(session: AsyncSession, chain_id: int, block: int) -> list[ChainLog]:
    rows = (await session.execute(
        select(ChainLog).where(ChainLog.chain_id == chain_id, ChainLog.block_number > block)
        .order_by(ChainLog.block_number, ChainLog.log_index)
    )).scalars().all()
    return list(rows)


async def delete_after(session: AsyncSession, chain_id: int, block: int) -> None:
    await session.execute(delete(ChainLog).where(ChainLog.chain_id == chain_id, ChainLog.block_number > block))
    await session.execute(delete(ChainBlock).where(ChainBlock.chain_id == chain_id, ChainBlock.number > block))


async def save_blocks(session: AsyncSession, chain_id: int, headers: Sequence[dict[str, Any]]) -> None:
    if not headers:
        return
    stmt = insert(ChainBlock).values([
        {"chain_id": chain_id, "number": int(h["number"], 16), "hash": h["hash"],
         "parent_hash": h["parentHash"], "timestamp": int(h["timestamp"], 16)}
        for h in headers
    ])
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["chain_id", "number"],
        set_={"hash": stmt.excluded.hash, "parent_hash": stmt.excluded.parent_hash,
              "timestamp": stmt.excluded.timestamp},
    ))


async def stored_block_hashes(session: AsyncSession, chain_id: int, low: int, high: int) -> dict[int, str]:
    rows = await session.execute(
        select(ChainBlock.number, ChainBlock.hash)
        .where(ChainBlock.chain_id == chain_id, ChainBlock.number >= low, ChainBlock.number <= high)
    )
    return {number: block_hash for number, block_hash in rows}


async def prune_blocks(session: AsyncSession, chain_id: int, below: int) -> None:
    await session.execute(delete(ChainBlock).where(ChainBlock.chain_id == chain_id, ChainBlock.number < below))


async def get_cursor(session: AsyncSession, chain_id: int, *, lock: bool = False) -> ChainCursor | None:
    query = select(ChainCursor).where(ChainCursor.chain_id == chain_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def save_cursor(session: AsyncSession, chain_id: int, *, number: int, block_hash: str,
                      finalized: int, head: int) -> None:
    stmt = insert(ChainCursor).values(chain_id=chain_id, block_number=number, block_hash=block_hash,
                                      finalized_number=finalized, head_number=head)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["chain_id"],
        set_={"block_number": number, "block_hash": block_hash, "finalized_number": finalized,
              "head_number": head, "updated_at": stmt.excluded.updated_at},
    ))


async def record_reorg(session: AsyncSession, chain_id: int, fork_block: int, old_head: int,
                       undone: list[dict[str, Any]]) -> None:
    session.add(ChainReorg(chain_id=chain_id, fork_block=fork_block, old_head=old_head,
                           depth=old_head - fork_block, undone=undone))
    await session.flush()


async def last_reorg(session: AsyncSession, chain_id: int) -> ChainReorg | None:
    return (await session.execute(
        select(ChainReorg).where(ChainReorg.chain_id == chain_id).order_by(ChainReorg.id.desc()).limit(1)
    )).scalar_one_or_none()


async def log_count(session: AsyncSession, chain_id: int) -> int:
    driver = await driver_connection(session)
    return int(await driver.fetchval("SELECT count(*) FROM chain.logs WHERE chain_id = $1", chain_id))
