"""The long-lived connections a process opens once: database, Redis, NATS, RPC."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
import redis.asyncio as aioredis
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from node.bus import connect_nats, ensure_streams
from node.config import Settings
from node.db import Database
from node.redis_pipeline import PipelinedRedis


@dataclass
class Resources:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    nats: NatsClient
    js: JetStreamContext
    scripts: PipelinedRedis  # Redis scripts per request (HMAC auth, rate limits), one pipelined connection
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=5.0))

    @classmethod
    async def open(cls, settings: Settings, *, name: str) -> Resources:
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL is not set; run `openpay dev` or configure it")
        from node.merchants.auth_cache import publish_changes

        db = Database.from_settings(settings)
        redis = aioredis.from_url(settings.redis_url, decode_responses=False)
        db.add_commit_hook(publish_changes(redis))
        nc = await connect_nats(settings, name)
        js = nc.jetstream()
        await ensure_streams(js, settings)
        return cls(settings=settings, db=db, redis=redis, nats=nc, js=js,
                   scripts=PipelinedRedis(settings.redis_url))

    async def close(self) -> None:
        await self.http.aclose()
        await self.nats.drain()
        await self.redis.aclose()
        await self.scripts.aclose()
        await self.db.dispose()

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state: "ok" or why not."""
        checks = {
            "database": self.db.ping(),
            "redis": self._redis_ok(),
            "nats": self._nats_ok(),
            "rpc": self._rpc_ok(),
        }
        results = await asyncio.gather(
            *(asyncio.wait_for(check, 2.0) for check in checks.values()), return_exceptions=True
        )
        return {
            name: "ok" if not isinstance(result, BaseException) else (repr(result)[:200] or "failed")
            for name, result in zip(checks, results, strict=True)
        }

    async def _redis_ok(self) -> None:
        await self.redis.ping()  # type: ignore[misc]  # redis-py types ping as sync|async

    async def _nats_ok(self) -> None:
        if not self.nats.is_connected:
            raise ConnectionError("not connected")
        await self.nats.flush(timeout=1)

    async def _rpc_ok(self) -> None:
        urls = self.settings.rpc_urls
        if not urls:
            raise ConnectionError("RPC_URL is not set")
        reply = await self.http.post(
            urls[0], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        )
        reply.raise_for_status()
        if int(reply.json()["result"], 16) != self.settings.chain_id:
            raise ConnectionError(f"RPC serves chain {reply.json()['result']}, expected {self.settings.chain_id}")
