"""One async engine per process and the unit-of-work session.

Whoever receives the work (a request, a message, an indexer batch) opens the
session and commits once; services take the session and never commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from node.config import Settings

CommitHook = Callable[[AsyncSession], Awaitable[None]]

# a pooled connection idle longer than this is pinged before use; a busy one is not (a ping on
# every checkout is a round trip per request, which the API's hot path cannot afford)
PING_AFTER_IDLE_S = 5.0
DRIVER_IDLE_S = 30.0


def _json_dumps(value: Any) -> str:
    # orjson for JSONB columns; non-string keys become strings, as the json module made them
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, echo=echo, json_serializer=_json_dumps,
        )
        _ping_idle_connections(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False,
                                           info={"database": self})
        self._commit_hooks: list[CommitHook] = []
        self._pool_size = pool_size
        self._driver_pool: asyncpg.Pool | None = None
        self._driver_pool_lock = asyncio.Lock()

    async def driver_pool(self) -> asyncpg.Pool:
        """Plain asyncpg connections, for hot paths that write one statement outside a session:
        a checkout here costs a fraction of SQLAlchemy's pool machinery. Connections idle for
        ``DRIVER_IDLE_S`` are closed (a database restart is not met by a stale connection)."""
        if self._driver_pool is None:
            async with self._driver_pool_lock:
                if self._driver_pool is None:
                    self._driver_pool = await asyncpg.create_pool(
                        self.dsn, min_size=0, max_size=self._pool_size,
                        max_inactive_connection_lifetime=DRIVER_IDLE_S, reset=_keep_session_state)
        return self._driver_pool

    def add_commit_hook(self, hook: CommitHook) -> None:
        """``hook(session)`` runs after each unit of work commits (never after a rollback): for
        effects outside the database that must follow the commit, such as cache invalidation."""
        self._commit_hooks.append(hook)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        if not settings.database_url:
            raise RuntimeError("DATABASE_URL is not set; run `openpay dev` or configure it")
        return cls(settings.database_url, pool_size=settings.database_pool_size)

    @property
    def dsn(self) -> str:
        """The URL in libpq form, for asyncpg connections of our own (LISTEN, advisory locks)."""
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits once at the end, or rolls back on error.

        The transaction begins with the first statement (a unit of work that never touches the
        session costs no BEGIN, COMMIT or pooled connection)."""
        session = self.sessions()
        try:
            yield session
            if session.in_transaction():
                await session.commit()
        finally:
            # closing rolls back what failed; a session that holds nothing (never used, or used,
            # committed and left without objects) has nothing to close: a greenlet hop saved
            if session.in_transaction() or session.identity_map:
                await session.close()
        for hook in self._commit_hooks:
            await hook(session)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._driver_pool is not None:
            await self._driver_pool.close()
            self._driver_pool = None
        await self.engine.dispose()


async def _keep_session_state(connection: asyncpg.Connection) -> None:
    """The driver pool's reset on release: none. Its users run single statements that leave no
    session state (no SET, LISTEN, advisory lock or cursor), and asyncpg's default reset is a
    round trip on every release."""


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """``pool_pre_ping`` for connections that sat idle: one that died while idle (database
    restarted, idle timeout) is replaced before a request can fail on it."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as error:  # any failure means the connection is unusable
            raise exc.DisconnectionError(str(error)) from error
        if not alive:
            raise exc.DisconnectionError("connection failed its ping")
