"""GCRA in Redis: bursts, refill, headers, and what an outage does per group."""

from __future__ import annotations

import uuid

import pytest

from node.config import DEFAULT_RATE_LIMITS, Settings
from node.errors import ServiceUnavailable
from node.infra.process import free_port
from node.ratelimit import RateLimited, RateLimiter
from node.redis_pipeline import PipelinedRedis
from node.resources import Resources


def _limiter(redis: PipelinedRedis, resources: Resources, **limits: str) -> RateLimiter:
    return RateLimiter(redis, resources.settings.model_copy(update={"rate_limits": limits}))


async def test_a_burst_then_429_with_headers(resources: Resources) -> None:
    limiter = _limiter(resources.scripts, resources, api="3/60")
    subject = uuid.uuid4().hex
    remaining = [(await limiter.check("api", subject)).remaining for _ in range(3)]  # type: ignore[union-attr]
    assert remaining == [2, 1, 0]
    with pytest.raises(RateLimited) as refused:
        await limiter.check("api", subject)
    assert refused.value.status == 429 and refused.value.code == "RATE_LIMITED"
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 20
    assert refused.value.headers["X-RateLimit-Remaining"] == "0"
    # another subject is not affected
    assert await limiter.check("api", uuid.uuid4().hex) is not None


async def test_unknown_groups_are_unlimited(resources: Resources) -> None:
    assert await _limiter(resources.scripts, resources).check("nothing", "x") is None


async def test_redis_outage_fails_open_for_api_and_closed_for_login(resources: Resources) -> None:
    dead = PipelinedRedis(f"redis://127.0.0.1:{free_port()}", timeout=0.2)
    limiter = _limiter(dead, resources, api="1/60", login_ip="1/60")
    try:
        assert await limiter.check("api", "x") is None
        with pytest.raises(ServiceUnavailable):
            await limiter.check("login_ip", "x")
    finally:
        await dead.aclose()


def test_configured_limits_change_only_the_groups_they_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENPAY_RATE_LIMITS", '{"api": "5/60"}')
    limits = Settings().rate_limits
    assert limits["api"] == "5/60"
    assert limits["checkout_ip"] == DEFAULT_RATE_LIMITS["checkout_ip"] and limits["public_ip"] == "120/60"
