"""Exchange rates: fetch and keep history, admin overrides, the active rate and its age policy.

The active rate of a pair is an unexpired admin override if there is one, else the newest
fetched observation (overrides live in their own table, never in the history, so clearing one
or its expiry brings the fetched rate straight back). An override lasts at most
``settings.rate_override_max_minutes``. Payments lock the active rate at creation; a rate older
than ``settings.rate_max_age_s`` prices nothing (503 RATE_STALE) rather than a wrong amount, and
the SEED placeholder prices test-mode payments only (live: 503 RATE_UNAVAILABLE).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import audit
from node.auth.context import RequestMeta
from node.config import Settings
from node.errors import NotFound, ServiceUnavailable, ValidationFailed
from node.exchange.coingecko import RateSource, RateSourceError
from node.exchange.rate_models import ExchangeRate, RateOverride

log = structlog.get_logger(__name__)

CURRENCIES = ("USDT", "USDC", "BTC", "ETH", "BNB", "LKR")


class RateStale(ServiceUnavailable):
    code = "RATE_STALE"


class RateUnavailable(ServiceUnavailable):
    code = "RATE_UNAVAILABLE"


@dataclass(frozen=True)
class ActiveRate:
    base: str
    quote: str
    rate: Decimal
    source: str
    fetched_at: datetime
    override_id: uuid.UUID | None = None
    reason: str | None = None
    expires_at: datetime | None = None

    def age_s(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.fetched_at).total_seconds()


async def record(session: AsyncSession, quote: str, prices: dict[str, Decimal], source: str,
                 at: datetime | None = None) -> None:
    rows = [{"base": base, "quote": quote, "rate": rate, "source": source, "fetched_at": at or datetime.now(UTC)}
            for base, rate in prices.items()]
    if rows:
        await session.execute(insert(ExchangeRate), rows)


async def refresh(session: AsyncSession, source: RateSource, quote: str = "LKR") -> dict[str, Decimal]:
    """Fetch from ``source`` and store; raises ``RateSourceError`` (nothing stored) on failure."""
    prices = await source.prices(quote)
    await record(session, quote, prices, source.name)
    return prices


async def seed_if_empty(session: AsyncSession, settings: Settings) -> bool:
    """The original's fallback: with no USDT/LKR rate ever stored, 325 LKR (source SEED), so a
    node without internet still starts; the SEED source is shown wherever the rate is."""
    exists = (await session.execute(select(ExchangeRate.id).where(
        ExchangeRate.base == "USDT", ExchangeRate.quote == "LKR", ExchangeRate.source != "MANUAL").limit(1))).first()
    if exists:
        return False
    await record(session, "LKR", {"USDT": Decimal(settings.rate_seed_lkr)}, "SEED")
    log.warning("no USDT/LKR rate yet: seeded", rate=settings.rate_seed_lkr, source="SEED")
    return True


async def _override(session: AsyncSession, settings: Settings, base: str, quote: str,
                    now: datetime) -> RateOverride | None:
    # the age bound also retires overrides stored without an expiry (before it was required)
    oldest = now - timedelta(minutes=settings.rate_override_max_minutes)
    query = (select(RateOverride).where(RateOverride.base == base, RateOverride.quote == quote,
                                        RateOverride.cleared_at.is_(None), RateOverride.created_at > oldest,
                                        or_(RateOverride.expires_at.is_(None), RateOverride.expires_at > now))
             .order_by(RateOverride.created_at.desc()).limit(1))
    return (await session.execute(query)).scalar_one_or_none()


async def latest(session: AsyncSession, base: str, quote: str) -> ExchangeRate | None:
    """The newest fetched (or seeded) rate; MANUAL rows that older versions wrote into the
    history are not observations and never come back after their override ends."""
    query = (select(ExchangeRate).where(ExchangeRate.base == base, ExchangeRate.quote == quote,
                                        ExchangeRate.source != "MANUAL")
             .order_by(ExchangeRate.fetched_at.desc(), ExchangeRate.id.desc()).limit(1))
    return (await session.execute(query)).scalar_one_or_none()


async def active(session: AsyncSession, settings: Settings, base: str = "USDT", quote: str = "LKR") -> ActiveRate:
    base, quote = base.upper(), quote.upper()
    if base == quote:
        return ActiveRate(base, quote, Decimal(1), "IDENTITY", datetime.now(UTC))
    now = datetime.now(UTC)
    override = await _override(session, settings, base, quote, now)
    if override is not None:
        # an override is as fresh as the admin's decision, until it expires (at most
        # rate_override_max_minutes after it was set)
        expires = override.created_at + timedelta(minutes=settings.rate_override_max_minutes)
        if override.expires_at is not None:
            expires = min(expires, override.expires_at)
        return ActiveRate(base, quote, override.rate, "MANUAL", now, override.id, override.reason, expires)
    row = await latest(session, base, quote)
    if row is None:
        raise NotFound(f"no active rate for {base}/{quote}", code="NOT_FOUND")
    return ActiveRate(base, quote, row.rate, row.source, row.fetched_at)


async def locked_rate(session: AsyncSession, settings: Settings, base: str = "USDT",
                      quote: str = "LKR", *, mode: str = "live") -> ActiveRate:
    """The rate a new payment of ``mode`` is priced at: refuses a stale one with 503 RATE_STALE,
    and the SEED placeholder for live payments with 503 RATE_UNAVAILABLE (test mode may use it)."""
    try:
        rate = await active(session, settings, base, quote)
    except NotFound as exc:
        raise RateUnavailable(f"no {base}/{quote} rate is known yet; try again shortly") from exc
    if rate.source == "SEED" and mode != "test":
        raise RateUnavailable(f"no {base}/{quote} rate has been fetched yet (only the placeholder seed); "
                              "live payments wait for a fetched rate")
    if rate.age_s() > settings.rate_max_age_s:
        raise RateStale(f"the {base}/{quote} rate is {int(rate.age_s())} s old (limit {settings.rate_max_age_s} s); "
                        "payments are paused until a fresh rate arrives")
    return rate


async def history(session: AsyncSession, base: str, quote: str, *, since: datetime | None = None,
                  limit: int = 100) -> list[ExchangeRate]:
    query = select(ExchangeRate).where(ExchangeRate.base == base.upper(), ExchangeRate.quote == quote.upper())
    if since is not None:
        query = query.where(ExchangeRate.fetched_at >= since)
    query = query.order_by(ExchangeRate.fetched_at.desc(), ExchangeRate.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def set_override(session: AsyncSession, settings: Settings, *, base: str, quote: str, rate: Decimal,
                       reason: str, admin_id: uuid.UUID, expires_in_minutes: int | None,
                       meta: RequestMeta) -> RateOverride:
    """Sets a manual rate for ``expires_in_minutes`` (default and maximum:
    ``settings.rate_override_max_minutes``): an override never outlives the stale-rate policy
    for longer than an admin can be expected to look again."""
    base, quote = base.upper(), quote.upper()
    if base not in CURRENCIES or quote not in CURRENCIES or base == quote:
        raise ValidationFailed(f"unsupported pair {base[:10]}/{quote[:10]}")
    if rate <= 0 or rate > Decimal(10) ** 15:
        raise ValidationFailed("rate must be positive")
    if not reason.strip():
        raise ValidationFailed("reason is required")
    limit = settings.rate_override_max_minutes
    if expires_in_minutes is not None and not 0 < expires_in_minutes <= limit:
        raise ValidationFailed(f"expiresInMinutes must be between 1 and {limit}")
    now = datetime.now(UTC)
    expires = now + timedelta(minutes=expires_in_minutes or limit)
    before = await _override(session, settings, base, quote, now)
    override = RateOverride(base=base, quote=quote, rate=rate, reason=reason.strip()[:1000], admin_id=admin_id,
                            expires_at=expires)
    session.add(override)
    await session.flush()
    await audit.record(session, action="exchange_rate.overridden", actor_type="ADMIN", actor_id=admin_id,
                       resource_type="exchange_rate", resource_id=f"{base}/{quote}",
                       changes={"rate": [str(before.rate) if before else None, str(rate)]},
                       details={"reason": override.reason, "expiresAt": expires.isoformat()},
                       meta=meta)
    return override


async def clear_override(session: AsyncSession, *, base: str, quote: str, admin_id: uuid.UUID,
                         meta: RequestMeta) -> int:
    result = await session.execute(
        update(RateOverride).where(RateOverride.base == base.upper(), RateOverride.quote == quote.upper(),
                                   RateOverride.cleared_at.is_(None))
        .values(cleared_at=func.now()).returning(RateOverride.id))
    cleared = len(result.all())
    if cleared:
        await audit.record(session, action="exchange_rate.override_cleared", actor_type="ADMIN", actor_id=admin_id,
                           resource_type="exchange_rate", resource_id=f"{base.upper()}/{quote.upper()}", meta=meta)
    return cleared


__all__ = ["ActiveRate", "RateSourceError", "RateStale", "RateUnavailable", "active", "clear_override", "history",
           "latest", "locked_rate", "record", "refresh", "seed_if_empty", "set_override"]
