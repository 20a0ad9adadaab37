"""Scheduler jobs of exchange rates: fetch every ``rates_interval_s``, seed when never fetched."""

from __future__ import annotations

import structlog

from node.config import Settings
from node.db import Database
from node.exchange import rates
from node.exchange.coingecko import CoinGecko, RateSourceError

log = structlog.get_logger(__name__)


async def refresh_rates(db: Database, settings: Settings, source: CoinGecko) -> bool:
    """Fetches and stores; on failure keeps the old rates (they age into RATE_STALE) and makes
    sure a first run without internet still has the SEED rate."""
    try:
        prices = await source.prices("LKR")
    except RateSourceError as exc:
        log.warning("rate fetch failed", error=str(exc), retry_after=exc.retry_after)
        async with db.unit_of_work() as session:
            await rates.seed_if_empty(session, settings)
        return False
    async with db.unit_of_work() as session:
        await rates.record(session, "LKR", prices, source.name)
    return True
