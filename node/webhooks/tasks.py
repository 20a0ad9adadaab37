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
    """Bus events -> delivery rows. Each fetch's messages are applied in one transaction (the
    handler only writes rows): under a backlog that is one claim and one commit per fetch instead
    of per message, which kept the consumer behind at 40 events/s on a busy 2-core machine."""
    return Consumer(resources.db, resources.js, resources.settings, name=CONSUMER_NAME,
                    event_types=EVENT_TYPES, handler=_on_event, batch=100, shared_transaction=True)


def webhook_dispatcher(resources: Resources) -> DeliveryDispatcher:
    return DeliveryDispatcher(resources.db, resources.settings)


async def purge_old_deliveries(db: Database, retention_days: int) -> int:
    """Finished deliveries (and their attempt log) older than the retention period."""
    async with db.unit_of_work() as session:
        return await repo.purge_finished(session, datetime.now(UTC) - timedelta(days=retention_days))
