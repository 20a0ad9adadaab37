"""HMAC request authentication for API keys (sdk-wire-protocol.md section 1), replay-proof.

Checks, in the spec's order, each failing with 401 and the spec's message:
headers present -> timestamp within the window -> key known, unrevoked, merchant
ACTIVE -> signature (constant-time). Then the signature is claimed in Redis with
``SET NX`` for the rest of its window, so the same signed request is accepted
once; a replay gets 401 ``invalid signature`` (it is no longer a valid signature).

One Lua call makes the claim, throttles the ``last_used_at`` update to once a minute per key,
applies the key's rate limit (``api`` group) and reads the merchant's auth generation, which
tells whether the process's cached copy of the key (``auth_cache``) is still current: a request
with a known key costs one Redis round trip and no SQL. Without Redis the replay check cannot be
made: requests fail closed with 503 rather than be accepted unprotected.
"""

from __future__ import annotations

import time

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
from node.merchants.auth_cache import CachedKey, KeyCache, generation_key
from node.ratelimit import GCRA_FUNCTION, Decision, RateLimiter
from node.redis_pipeline import PipelinedRedis

# KEYS: replay claim, last-used throttle, rate-limit bucket, auth generation.
# ARGV: claim ttl ms, throttle ttl s, limit interval ms, limit burst (0: no limit).
# Returns {fresh, touch, generation, allowed, remaining, retry_after_ms, reset_ms}.
_AUTH_SCRIPT = GCRA_FUNCTION + """
local generation = redis.call('GET', KEYS[4]) or ''
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return {0, 0, generation}
end
local touch = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) and 1 or 0
if tonumber(ARGV[4]) == 0 then
  return {1, touch, generation}
end
local limit = gcra(KEYS[3], ARGV[3], ARGV[4])
return {1, touch, generation, limit[1], limit[2], limit[3], limit[4]}
"""

_keys = KeyCache()


class IpNotAllowed(Forbidden):
    code = "IP_NOT_ALLOWED"


async def authenticate(
    session: AsyncSession, redis: PipelinedRedis, settings: Settings, *, key_id: str | None,
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
    cached = _keys.get(key_id) or await _load(session, redis, settings, key_id)
    expected = signature(cached.secret, timestamp, method, path, body)
    if not signatures_match(expected, given_signature):
        raise Unauthorized(INVALID_SIGNATURE)
    if not ip_allowed(cached.key.allowed_ips, client_ip):
        raise IpNotAllowed("IP address not allowed for this API key")
    key = cached.key
    limit = limiter.limits.get("api") if limiter else None
    # the claim lives until the signature could no longer pass the window check
    ttl_ms = max(1, ts + settings.hmac_window_ms - now_ms + 1000)
    try:
        result = await redis.evalsha(
            _AUTH_SCRIPT,
            [f"hmac:seen:{key_id}:{expected}", f"apikey:touched:{key.id}",
             limiter.bucket("api", f"key:{key.id}") if limiter else "-", generation_key(key.merchant_id)],
            [ttl_ms, settings.api_key_last_used_every_s, limit.interval_ms if limit else 0,
             limit.requests if limit else 0])
    except RedisError:
        raise ServiceUnavailable("authentication temporarily unavailable") from None
    if result[2] != (cached.generation or b""):
        # the key or its merchant changed since it was cached: decide on the database's copy
        _keys.drop(key_id)
        cached = await _load(session, redis, settings, key_id)
        key = cached.key
        if not ip_allowed(key.allowed_ips, client_ip):
            raise IpNotAllowed("IP address not allowed for this API key")
    if not result[0]:
        raise Unauthorized(INVALID_SIGNATURE)
    decision = limiter.decide(limit, result[3:7]) if limiter and limit else None
    if result[1]:
        await repo.touch_key(session, key.id)
    return cached.principal, decision


async def _load(session: AsyncSession, redis: PipelinedRedis, settings: Settings, key_id: str) -> CachedKey:
    """The key from the database, cached under a generation read *before* the row it caches: a
    change committed after that read bumps the generation past it, so a stale row never passes
    for current. (The first query only finds the merchant whose generation to read.)"""
    key = await repo.usable_key(session, key_id)
    if key is None:
        raise Unauthorized(INVALID_KEY)
    try:
        generation = await redis.call("GET", generation_key(key.merchant_id))
    except RedisError:
        raise ServiceUnavailable("authentication temporarily unavailable") from None
    key = await repo.usable_key(session, key_id)
    if key is None:
        raise Unauthorized(INVALID_KEY)
    return _keys.put(key_id, key, open_hmac_key(settings, key.hmac_key_sealed), principal_for_key(key), generation)
