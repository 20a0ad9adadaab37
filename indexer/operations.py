"""`openpay indexer status|resync`: what an operator asks of the indexer."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from chain.client import RpcClient
from indexer.leader import LeaderLock
from indexer.service import load_deployment
from node.config import Settings
from node.db import Database
from node.indexing import repository


@dataclass
class IndexerStatus:
    chain_id: int
    head: int | None
    cursor: int | None
    finalized: int | None
    lag_blocks: int | None
    logs: int
    last_reorg: str | None
    leader_running: bool


async def status(settings: Settings) -> IndexerStatus:
    deployment = load_deployment(settings)
    db = Database.from_settings(settings)
    rpc = RpcClient(settings.rpc_urls, retries=1)
    try:
        head: int | None
        try:
            head = int(await rpc.request("eth_blockNumber"), 16)
        except Exception:  # an unreachable RPC is part of the status, not a failure of it
            head = None
        async with db.unit_of_work() as session:
            cursor = await repository.get_cursor(session, deployment.chain_id)
            reorg = await repository.last_reorg(session, deployment.chain_id)
            logs = await repository.log_count(session, deployment.chain_id)
        running = not await _lock_free(db, deployment.chain_id)
    finally:
        await rpc.aclose()
        await db.dispose()
    return IndexerStatus(
        chain_id=deployment.chain_id, head=head, cursor=cursor.block_number if cursor else None,
        finalized=cursor.finalized_number if cursor else None,
        lag_blocks=(head - cursor.block_number) if cursor and head is not None else None, logs=logs,
        last_reorg=(f"block {reorg.fork_block}, depth {reorg.depth}, {len(reorg.undone)} logs undone, "
                    f"{reorg.detected_at:%Y-%m-%d %H:%M:%S}") if reorg else None,
        leader_running=running,
    )


async def _lock_free(db: Database, chain_id: int) -> bool:
    conn = await asyncpg.connect(db.dsn)
    try:
        key = LeaderLock(db.dsn, chain_id).key
        free = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
        if free:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
        return free
    finally:
        await conn.close()


class IndexerRunning(Exception):
    pass


async def resync(settings: Settings, from_block: int) -> int:
    """Moves the cursor back so blocks from ``from_block`` are read again. Logs already stored
    are skipped (unique keys), so only what was missing is added and handled."""
    deployment = load_deployment(settings)
    db = Database.from_settings(settings)
    rpc = RpcClient(settings.rpc_urls)
    lock = LeaderLock(db.dsn, deployment.chain_id)
    conn = await asyncpg.connect(db.dsn)
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock.key):
            raise IndexerRunning("an indexer is running for this chain; stop it, resync, then start it again")
        block = max(from_block - 1, 0)
        header = await rpc.request("eth_getBlockByNumber", [hex(block), False])
        async with db.unit_of_work() as session:
            cursor = await repository.get_cursor(session, deployment.chain_id, lock=True)
            finalized = cursor.finalized_number if cursor else block
            await repository.save_cursor(session, deployment.chain_id, number=block, block_hash=header["hash"],
                                         finalized=min(finalized, block), head=cursor.head_number if cursor else 0)
        return block
    finally:
        await conn.close()
        await rpc.aclose()
        await db.dispose()
