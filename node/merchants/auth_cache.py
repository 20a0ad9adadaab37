"""The API keys a process has seen, so HMAC authentication costs no SQL query per request.

An entry is valid while its merchant's *auth generation* in Redis is unchanged. Every change
that can refuse a key (key revoked, merchant frozen or deactivated, KYC moved) marks the merchant
with ``changed(session, merchant_id)``; after the unit of work commits, ``publish_changes``
increments the generation. Authentication reads the generation in the same Redis round trip as
its replay claim and rate limit, and reloads the key from the database when it moved, so a
revoked key or a frozen merchant is refused from the next request on, in every API process.

A key is cached with a generation read before the row itself: a change committed after that
read bumps the generation past the one cached, so a stale row can never be cached as current.
If Redis cannot take the increment (it is down; authentication then fails closed anyway), the
entry still expires after ``TTL_S``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from node.auth.principal import MerchantPrincipal
from node.db.engine import CommitHook
from node.merchants.repository import KeyForAuth

log = structlog.get_logger(__name__)

TTL_S = 30.0
MAX_ENTRIES = 10_000
_CHANGED = "auth_changed"


def generation_key(merchant_id: uuid.UUID) -> str:
    return f"auth:gen:{merchant_id}"


def changed(session: AsyncSession, merchant_id: uuid.UUID) -> None:
    """Marks the merchant's cached keys stale once this unit of work commits."""
    session.info.setdefault(_CHANGED, set()).add(merchant_id)


def publish_changes(redis: aioredis.Redis) -> CommitHook:
    async def publish(session: AsyncSession) -> None:
        merchants: set[uuid.UUID] | None = session.info.pop(_CHANGED, None)
        if not merchants:
            return
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for merchant_id in merchants:
                    pipe.incr(generation_key(merchant_id))
                await pipe.execute()
        except RedisError as error:
            log.warning("could not invalidate cached API keys; they expire on their own",
                        merchants=[str(m) for m in merchants], ttl_s=TTL_S, error=repr(error))
    return publish


@dataclass(frozen=True)
class CachedKey:
    key: KeyForAuth
    secret: str  # the HMAC key, unsealed
    principal: MerchantPrincipal  # what the key authenticates as
    generation: bytes | None
    loaded_at: float


class KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, CachedKey] = {}

    def get(self, key_id: str) -> CachedKey | None:
        hit = self._entries.get(key_id)
        if hit is not None and time.monotonic() - hit.loaded_at > TTL_S:
            del self._entries[key_id]
            return None
        return hit

    def put(self, key_id: str, key: KeyForAuth, secret: str, principal: MerchantPrincipal,
            generation: bytes | None) -> CachedKey:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        cached = self._entries[key_id] = CachedKey(key, secret, principal, generation, time.monotonic())
        return cached

    def drop(self, key_id: str) -> None:
        self._entries.pop(key_id, None)
