"""Periodic jobs (apscheduler) of the scheduler role."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from node.bus import OutboxRelay
from node.resources import Resources

log = structlog.get_logger(__name__)


def build_scheduler(resources: Resources) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    relay = OutboxRelay(resources.db, resources.js, resources.settings)
    scheduler.add_job(relay.purge_published, "interval", hours=1, id="outbox.purge",
                      coalesce=True, max_instances=1)
    from node.webhooks.tasks import purge_old_deliveries

    scheduler.add_job(purge_old_deliveries, "interval", hours=6, id="webhooks.purge", coalesce=True,
                      max_instances=1, args=[resources.db, resources.settings.webhook_retention_days])
    return scheduler


def scheduler_tasks(resources: Resources, stop: asyncio.Event) -> list[Awaitable[None]]:
    async def run() -> None:
        scheduler = build_scheduler(resources)
        scheduler.start()
        try:
            await stop.wait()
        finally:
            scheduler.shutdown(wait=False)

    return [run()]
