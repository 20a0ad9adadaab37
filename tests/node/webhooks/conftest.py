"""Helpers for the webhooks tests: fast retry settings, a merchant whose endpoints are
disabled afterwards (the database is shared), a dispatcher running in the test's loop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from node.bus import Event
from node.config import Settings
from node.resources import Resources
from node.webhooks import service
from node.webhooks.dispatcher import DeliveryDispatcher
from node.webhooks.models import Delivery, DeliveryAttempt, Endpoint
from node.webhooks.schemas import EndpointIn
from node.webhooks.signing import public_key_b64


@pytest.fixture
def fast(webhook_settings: Settings) -> Settings:
    return webhook_settings


@pytest_asyncio.fixture
async def merchant(resources: Resources) -> AsyncIterator[uuid.UUID]:
    merchant_id = uuid.uuid4()
    yield merchant_id
    async with resources.db.unit_of_work() as session:
        await session.execute(update(Endpoint).where(Endpoint.merchant_id == merchant_id).values(enabled=False))
        await session.execute(  # parked, as disabling through the service does
            update(Delivery).where(Delivery.merchant_id == merchant_id, Delivery.status.in_(["PENDING", "FAILED"]))
            .values(next_attempt_at=datetime.max.replace(tzinfo=UTC)))


@pytest.fixture
def dispatcher(webhook_dispatcher: DeliveryDispatcher) -> DeliveryDispatcher:
    return webhook_dispatcher


async def add_endpoint(resources: Resources, settings: Settings, merchant_id: uuid.UUID, url: str,
                       **fields: Any) -> Endpoint:
    async with resources.db.unit_of_work() as session:
        return await service.create_endpoint(session, settings, merchant_id,
                                             EndpointIn(url=url, mode=fields.pop("mode", "test"), **fields))


async def public_key(resources: Resources, merchant_id: uuid.UUID) -> str:
    async with resources.db.unit_of_work() as session:
        keys = await service.public_keys(session, merchant_id)
    return public_key_b64(keys[0].public_key)


async def emit(resources: Resources, merchant_id: uuid.UUID, type: str, data: dict[str, Any] | None = None,
               key: str | None = None) -> Event:
    """What the bus consumer does with one message (the handler, in its own transaction)."""
    event = Event(uuid.uuid4(), type, key, datetime.now(UTC), {"merchantId": str(merchant_id), **(data or {})})
    async with resources.db.unit_of_work() as session:
        await service.deliveries_for_event(session, event)
    return event


async def deliveries(resources: Resources, merchant_id: uuid.UUID) -> list[Delivery]:
    async with resources.db.unit_of_work() as session:
        return list((await session.execute(
            select(Delivery).where(Delivery.merchant_id == merchant_id).order_by(Delivery.seq)
        )).scalars().all())


async def attempts(resources: Resources, delivery_id: uuid.UUID) -> list[DeliveryAttempt]:
    async with resources.db.unit_of_work() as session:
        return list((await session.execute(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id).order_by(DeliveryAttempt.id)
        )).scalars().all())


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def statuses(rows: list[Delivery]) -> list[str]:
    return [row.status for row in rows]
