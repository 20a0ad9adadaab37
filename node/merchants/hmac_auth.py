"""HMAC request authentication for API keys (sdk-wire-protocol.md section 1), replay-proof.

Checks, in the spec's order, each failing with 401 and the spec's message:
headers present -> timestamp within the window -> key known, unrevoked, merchant
ACTIVE (one SQL query; a suspended merchant's keys fail at the next request) ->
signature (constant-time). Then the signature is claimed in Redis with
``SET NX`` for the rest of its window, so the same signed request is accepted
once; a replay gets 401 ``invalid signature`` (it is no longer a valid signature).
The same Redis round trip throttles the ``last_used_at`` update to once a minute
per key and applies the key's rate limit (``api`` group): one SQL query and one Redis
round trip per request. Without Redis the replay check cannot be made: requests fail closed with
503 rather than be accepted unprotected.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from node.auth.hmac_signing import (
    BAD_TIMESTAMP,
    INVALID_KEY,
    INVALID_SIGNATURE,
    MISSING_HEADERS,
    parse_timestamp,
    signature,
    signatures_match,
)
from node.auth.principal import MerchantPrincipal
from node.config import Settings
from node.errors import Forbidden, ServiceUnavailable, Unauthorized
from node.merchants import repository as repo
from node.merchants.api_keys import ip_allowed, open_hmac_key, principal_for_key
from node.ratelimit import Decision, RateLimiter


class IpNotAllowed(Forbidden):
    code = "IP_NOT_ALLOWED"


async def authenticate(
    session: AsyncSession, redis: aioredis.Redis, settings: Settings, *, key_id: str | None,
    timestamp: str | None, given_signature: str | None, method: str, path: str, body: bytes,
    client_ip: str | None, limiter: RateLimiter | None = None,
) -> tuple[MerchantPrincipal, Decision | None]:
    if not key_id or not timestamp or not given_signature:
        raise Unauthorized(MISSING_HEADERS)
    now_ms = int(time.time() * 1000)
    ts = parse_timestamp(timestamp, now_ms, settings.hmac_window_ms)
    if ts is None:
        raise Unauthorized(BAD_TIMESTAMP)
    if len(key_id) > 64:
        raise Unauthorized(INVALID_KEY)
    key = await repo.usable_key(session, key_id)
    if key is None:
        raise Unauthorized(INVALID_KEY)
    expected = signature(open_hmac_key(settings, key.hmac_key_sealed), timestamp, method, path, body)
    if not signatures_match(expected, given_signature):
        raise Unauthorized(INVALID_SIGNATURE)
    if not ip_allowed(key.allowed_ips, client_ip):
        raise IpNotAllowed("IP address not allowed for this API key")
    # the claim lives until the signature could no longer pass the window check
    ttl_ms = max(1, ts + settings.hmac_window_ms - now_ms + 1000)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(f"hmac:seen:{key_id}:{expected}", b"1", nx=True, px=ttl_ms)
            pipe.set(f"apikey:touched:{key.id}", b"1", nx=True, ex=settings.api_key_last_used_every_s)
            limit = await limiter.queue(pipe, "api", f"key:{key.id}") if limiter else None
            results = await pipe.execute()
    except RedisError:
        raise ServiceUnavailable("authentication temporarily unavailable") from None
    fresh, touch = results[0], results[1]
    if not fresh:
        raise Unauthorized(INVALID_SIGNATURE)
    decision = limiter.decide(limit, results[2]) if limiter and limit else None
    if touch:
        await repo.touch_key(session, key.id)
    return principal_for_key(key), decision
