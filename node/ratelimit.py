"""Rate limits in Redis: GCRA, one Lua call (one round trip) per check.

A limit ``"N/T"`` lets N requests through in any T seconds as a burst and then one
every T/N seconds. Each check is for a named group and a subject (an IP, an API
key, a user, an e-mail hash). Limits come from ``settings.rate_limits``.

When Redis is down a group either lets the request through (fail open) or answers
503 (fail closed):

- ``login_ip``, ``login_account``, ``totp``, ``password_ip``: fail CLOSED. These
  stop password and code guessing; an outage must not open them to brute force,
  and refusing logins for a while costs little.
- ``api``, ``admin``, ``public_ip``: fail OPEN. They protect capacity, not
  secrets; authentication still applies to every request, and payments must
  keep working through a cache outage.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import structlog
from redis.exceptions import RedisError

from node.config import Settings
from node.errors import NodeError, ServiceUnavailable
from node.redis_pipeline import PipelinedRedis

log = structlog.get_logger(__name__)

FAIL_CLOSED = frozenset({"login_ip", "login_account", "totp", "password_ip"})

# gcra(bucket, interval_ms, burst) -> {allowed, remaining, retry_after_ms, reset_ms}; a Lua function so
# other scripts (HMAC authentication) can apply a limit in the same call
GCRA_FUNCTION = """
local function gcra(bucket, interval_ms, burst_count)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local interval = tonumber(interval_ms)
  local burst = tonumber(burst_count) * interval
  local tat = tonumber(redis.call('GET', bucket) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst
  if allow_at > now then
    return {0, 0, allow_at - now, tat - now}
  end
  redis.call('SET', bucket, new_tat, 'PX', new_tat - now + 1)
  return {1, math.floor((now + burst - new_tat) / interval), 0, new_tat - now}
end
"""
_GCRA = GCRA_FUNCTION + "return gcra(KEYS[1], ARGV[1], ARGV[2])\n"


class RateLimited(NodeError):
    code = "RATE_LIMITED"
    status = 429

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers


@dataclass(frozen=True)
class Limit:
    requests: int
    period_s: float

    @classmethod
    def parse(cls, text: str) -> Limit:
        count, _, period = text.partition("/")
        return cls(int(count), float(period or 60))

    @property
    def interval_ms(self) -> int:
        return max(1, int(self.period_s * 1000 / self.requests))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        headers = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                   "X-RateLimit-Reset": str(self.reset_s)}
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class RateLimiter:
    def __init__(self, redis: PipelinedRedis, settings: Settings) -> None:
        self.redis = redis
        self.limits = {group: Limit.parse(text) for group, text in settings.rate_limits.items()}

    def bucket(self, group: str, subject: str) -> str:
        return f"rl:{group}:{hashlib.sha256(subject.encode()).hexdigest()[:32]}"

    def decide(self, limit: Limit, result: Any) -> Decision:
        """The decision from a ``gcra`` result (this class's or another script's); raises ``RateLimited`` (429)."""
        allowed, remaining, retry_ms, reset_ms = result
        decision = Decision(bool(allowed), limit.requests, int(remaining), max(1, math.ceil(int(retry_ms) / 1000)),
                            max(0, math.ceil(int(reset_ms) / 1000)))
        if not decision.allowed:
            raise RateLimited("too many requests", decision.headers())
        return decision

    async def check(self, group: str, subject: str) -> Decision | None:
        """The decision for one request; None when the group has no limit or Redis is down
        for a fail-open group. Raises ``RateLimited`` (429) or ``ServiceUnavailable`` (fail closed)."""
        limit = self.limits.get(group)
        if limit is None:
            return None
        try:
            result = await self.redis.evalsha(_GCRA, [self.bucket(group, subject)], [limit.interval_ms, limit.requests])
        except RedisError as exc:
            if group in FAIL_CLOSED:
                log.warning("rate limiter unavailable; failing closed", group=group, error=repr(exc))
                raise ServiceUnavailable("temporarily unavailable, try again shortly") from None
            log.warning("rate limiter unavailable; failing open", group=group, error=repr(exc))
            return None
        return self.decide(limit, result)
