"""What the worker and scheduler roles run for webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from node.bus import Consumer, Event
from node.db import Database
from node.resources import Resources
from node.webhooks import repository as repo
from node.webhooks.dispatcher import DeliveryDispatcher
from node.webhooks.service import EVENT_TYPES, deliveries_for_event

CONSUMER_NAME = "webhooks"


async def _on_event(session: AsyncSession, event: Event) -> None:
    await deliveries_for_event(session, event)


def webhook_consumer(resources: Resources) -> Consumer:
    """Bus events -> delivery rows (one transaction per message, idempotent)."""
    # batch=1: on a quiet stream nats-py holds the first message of a larger pull until the
    # batch fills or the fetch times out (1 s), which was the whole p99 of announce -> webhook;
    # each message is its own transaction anyway, so one per pull costs little
    return Consumer(resources.db, resources.js, resources.settings, name=CONSUMER_NAME,
                    event_types=EVENT_TYPES, handler=_on_event, batch=1)


def webhook_dispatcher(resources: Resources) -> DeliveryDispatcher:
    return DeliveryDispatcher(resources.db, resources.settings)


async def purge_old_deliveries(db: Database, retention_days: int) -> int:
    """Finished deliveries (and their attempt log) older than the retention period."""
    async with db.unit_of_work() as session:
        return await repo.purge_finished(session, datetime.now(UTC) - timedelta(days=retention_days))
