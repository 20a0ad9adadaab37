"""One active indexer per chain: a PostgreSQL advisory lock held on its own connection.

A standby blocks on the lock; when the leader dies its connection closes, PostgreSQL
releases the lock and the standby continues from the committed cursor.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from indexer.metrics import LEADER

log = structlog.get_logger(__name__)

_LOCK_BASE = 0x4F50_494E_0000_0000  # "OPIN": Open Pay indexer


class LeadershipLost(Exception):
    """The lock connection broke: another indexer may be running now; stop writing."""


class LeaderLock:
    def __init__(self, dsn: str, chain_id: int) -> None:
        self.dsn = dsn
        self.key = _LOCK_BASE + chain_id
        self._conn: asyncpg.Connection | None = None
        self._checking = asyncio.Lock()  # pipelined writes check at the same time; one query at a time

    async def acquire(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key):
            log.info("another indexer leads this chain; waiting as standby")
            await conn.execute("SELECT pg_advisory_lock($1)", self.key)
        self._conn = conn
        LEADER.set(1)
        log.info("leading the chain's indexing")

    async def check(self) -> None:
        """Raises unless we still hold the lock (called before each commit)."""
        if self._conn is None or self._conn.is_closed():
            raise LeadershipLost("lock connection closed")
        try:
            async with self._checking:
                await self._conn.fetchval("SELECT 1", timeout=5)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            LEADER.set(0)
            raise LeadershipLost(str(exc)) from exc

    async def release(self) -> None:
        LEADER.set(0)
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
        self._conn = None
