"""The rules of webhooks: endpoints, keys, which events become which deliveries,
retries and replays. Functions take the session first and never commit."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from node.bus import Event
from node.config import Settings
from node.webhooks import repository as repo
from node.webhooks.errors import (
    DeliveryFailed,
    DeliveryNotFound,
    EndpointNotFound,
    InvalidWebhookConfiguration,
    WebhookNotConfigured,
)
from node.webhooks.models import Delivery, DeliveryStatus, Endpoint, SigningKey
from node.webhooks.schemas import EndpointIn, EndpointPatch, ReplayIn
from node.webhooks.sender import AttemptOutcome, WebhookSender
from node.webhooks.signing import MerchantKeys, generate_key, open_key, signed_headers
from node.webhooks.targets import TargetRefused, check_url

# the bus events webhooks are made from (JetStream subject filters)
EVENT_TYPES = ["payment.*", "withdrawal.*", "settlement.*", "subscription.*", "refund.*", "chain.reorg"]

TEST_EVENT = "test.webhook"
TEST_BODY = b'{"data":{"message":"This is a test webhook from OpenLankaPay"},"event":"test.webhook"}'


# --- what an event becomes ---

def patterns_matching(event_type: str) -> list[str]:
    """The endpoint filters that take ``event_type``: exact, its family, everything."""
    return ["*", event_type, f"{event_type.split('.', 1)[0]}.*"]


def webhook_body(event_type: str, data: dict[str, Any]) -> bytes:
    """Compact JSON. Payment events carry the SDK Payment object at the top level plus
    ``event`` (what plugins read); other events carry ``{"data": ..., "event": ...}`` like the
    original's test webhook."""
    if event_type.startswith("payment."):
        return orjson.dumps({**data, "event": event_type})
    return orjson.dumps({"data": data, "event": event_type})


def _merchant_of(event: Event) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(event.data["merchantId"]))
    except (KeyError, ValueError, TypeError):
        return None


async def deliveries_for_event(session: AsyncSession, event: Event) -> int:
    """The bus handler: one delivery per enabled endpoint of the event's merchant whose
    filter (and mode, when the event carries ``"mode"``) matches. Idempotent on (event id, endpoint)."""
    merchant_id = _merchant_of(event)
    if merchant_id is None:
        return 0
    # an event that says which mode it belongs to goes to endpoints of that mode only
    mode = event.data.get("mode")
    return await repo.insert_event_deliveries(
        session, merchant_id=merchant_id, event_id=event.id, event_type=event.type, ordering_key=event.key,
        occurred_at=event.created_at, body=webhook_body(event.type, event.data),
        patterns=patterns_matching(event.type), mode=mode if mode in ("live", "test") else None,
    )


def after_attempt(
    settings: Settings, attempt: int, success: bool, now: datetime, rng: random.Random | None = None,
) -> tuple[str, datetime | None]:
    """The delivery's status after attempt ``attempt`` (1-based), and when to try again."""
    if success:
        return DeliveryStatus.delivered, None
    schedule = settings.webhook_retry_schedule_s
    if attempt > len(schedule):
        return DeliveryStatus.exhausted, None
    jitter = settings.webhook_retry_jitter
    wait = schedule[attempt - 1] * (1 + (rng or random).uniform(-jitter, jitter))
    return DeliveryStatus.failed, now + timedelta(seconds=wait)


def lease_s(settings: Settings) -> float:
    # longer than any attempt (the sender enforces a total deadline) plus a queue wait
    if settings.webhook_lease_s is not None:
        return settings.webhook_lease_s
    return settings.webhook_timeout_s * 3 + 5


# --- keys ---

async def ensure_key(session: AsyncSession, settings: Settings, merchant_id: uuid.UUID) -> SigningKey:
    await repo.lock_merchant_keys(session, merchant_id)
    key = await repo.active_key(session, merchant_id)
    if key is None:
        public, sealed = generate_key(settings, merchant_id)
        key = await repo.insert_key(session, merchant_id, public, sealed)
    return key


async def rotate_key(session: AsyncSession, settings: Settings, merchant_id: uuid.UUID) -> SigningKey:
    """A new active key; the old one stays published (and co-signs) for the grace period."""
    await repo.lock_merchant_keys(session, merchant_id)
    await repo.retire_active_key(
        session, merchant_id, datetime.now(UTC) + timedelta(seconds=settings.webhook_key_grace_s)
    )
    public, sealed = generate_key(settings, merchant_id)
    return await repo.insert_key(session, merchant_id, public, sealed)


async def public_keys(session: AsyncSession, merchant_id: uuid.UUID) -> list[SigningKey]:
    return list(await repo.valid_keys(session, merchant_id))


async def signing_keys(session: AsyncSession, settings: Settings, merchant_id: uuid.UUID) -> MerchantKeys:
    keys = list(await repo.valid_keys(session, merchant_id))
    if not keys or keys[0].retired_at is not None:
        keys = [await ensure_key(session, settings, merchant_id), *keys]
    opened = [open_key(settings, merchant_id, k.private_key_sealed) for k in keys]
    return MerchantKeys(active=opened[0], grace=tuple(opened[1:]))


# --- endpoints ---

async def _checked_url(url: str, mode: str, settings: Settings) -> str:
    url = url.strip()
    if not url:
        raise InvalidWebhookConfiguration("URL is required")
    try:
        await check_url(url, mode, settings)
    except TargetRefused as exc:
        raise InvalidWebhookConfiguration(str(exc)) from None
    return url


async def create_endpoint(
    session: AsyncSession, settings: Settings, merchant_id: uuid.UUID, data: EndpointIn,
) -> Endpoint:
    url = await _checked_url(data.url, data.mode, settings)
    await ensure_key(session, settings, merchant_id)
    endpoint = Endpoint(id=uuid.uuid4(), merchant_id=merchant_id, url=url, events=data.events, mode=data.mode,
                        enabled=data.enabled, description=data.description, is_sdk=False)
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint)
    return endpoint


async def get_endpoint(session: AsyncSession, merchant_id: uuid.UUID, endpoint_id: uuid.UUID) -> Endpoint:
    endpoint = await repo.get_endpoint(session, merchant_id, endpoint_id)
    if endpoint is None:
        raise EndpointNotFound()
    return endpoint


async def list_endpoints(session: AsyncSession, merchant_id: uuid.UUID) -> list[Endpoint]:
    return list(await repo.list_endpoints(session, merchant_id))


async def update_endpoint(
    session: AsyncSession, settings: Settings, merchant_id: uuid.UUID, endpoint_id: uuid.UUID,
    data: EndpointPatch,
) -> Endpoint:
    endpoint = await get_endpoint(session, merchant_id, endpoint_id)
    mode = data.mode or endpoint.mode
    if data.url is not None or data.mode is not None:
        endpoint.url = await _checked_url(data.url if data.url is not None else endpoint.url, mode, settings)
        endpoint.mode = mode
    if data.events is not None:
        endpoint.events = data.events
    if data.description is not None:
        endpoint.description = data.description
    was_enabled = endpoint.enabled
    if data.enabled is not None:
        endpoint.enabled = data.enabled
    endpoint.updated_at = datetime.now(UTC)
    await session.flush()
    if endpoint.enabled != was_enabled:
        await repo.park_deliveries(session, endpoint.id, parked=not endpoint.enabled)
    return endpoint


async def delete_endpoint(session: AsyncSession, merchant_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
    endpoint = await get_endpoint(session, merchant_id, endpoint_id)
    endpoint.deleted_at = datetime.now(UTC)
    endpoint.enabled = False
    await session.flush()
    await repo.park_deliveries(session, endpoint.id, parked=True)


# --- the SDK's single configuration ---

async def configure_sdk(
    session: AsyncSession, settings: Settings, merchant_id: uuid.UUID, url: str | None, *, mode: str,
) -> tuple[Endpoint, SigningKey]:
    """The wire protocol's configure: one config per merchant, a NEW key pair on every call."""
    if not url or not url.strip():
        raise InvalidWebhookConfiguration("URL is required")
    url = url.strip()
    loopback_http = mode == "test" and url.startswith("http://")
    if not url.startswith("https://") and not loopback_http:
        raise InvalidWebhookConfiguration("URL must use HTTPS")
    url = await _checked_url(url, mode, settings)
    endpoint = await repo.upsert_sdk_endpoint(session, merchant_id, url, mode)
    key = await rotate_key(session, settings, merchant_id)
    return endpoint, key


async def sdk_public_key(session: AsyncSession, merchant_id: uuid.UUID) -> SigningKey:
    key = await repo.active_key(session, merchant_id)
    if key is None:
        raise WebhookNotConfigured()
    return key


async def send_test(
    session: AsyncSession, settings: Settings, sender: WebhookSender, merchant_id: uuid.UUID,
    endpoint_id: uuid.UUID | None = None,
) -> tuple[Delivery, AttemptOutcome]:
    """One synchronous delivery of the test event; a failure leaves it scheduled for retry."""
    if endpoint_id is None:
        endpoint = await repo.sdk_endpoint(session, merchant_id)
        if endpoint is None or endpoint.deleted_at is not None:
            raise WebhookNotConfigured(code="NOT_CONFIGURED")
    else:
        endpoint = await get_endpoint(session, merchant_id, endpoint_id)
    if not endpoint.enabled:
        raise DeliveryFailed("webhook is not active")
    now = datetime.now(UTC)
    delivery = Delivery(
        id=uuid.uuid4(), endpoint_id=endpoint.id, merchant_id=merchant_id, event_id=uuid.uuid4(),
        event_type=TEST_EVENT, ordering_key=None, occurred_at=now, body=TEST_BODY,
        status=DeliveryStatus.delivering, attempts=1, last_attempt_at=now,
        next_attempt_at=now + timedelta(seconds=lease_s(settings)),
    )
    session.add(delivery)
    await session.flush()
    keys = await signing_keys(session, settings, merchant_id)
    headers = signed_headers(keys, delivery_id=delivery.id, event_type=TEST_EVENT, attempt=1, body=TEST_BODY)
    outcome = await sender.send(endpoint.url, endpoint.mode, headers, TEST_BODY, endpoint=endpoint.id)
    status, next_at = after_attempt(settings, 1, outcome.success, datetime.now(UTC))
    await repo.record_attempts(session, [repo.AttemptRecord(
        delivery_id=delivery.id, attempt=1, started_at=now, success=outcome.success,
        status_code=outcome.status_code, latency_ms=outcome.latency_ms, response_excerpt=outcome.response_excerpt,
        error=outcome.error, status=status, next_attempt_at=next_at,
    )])
    await session.refresh(delivery)
    return delivery, outcome


# --- the delivery log ---

async def get_delivery(session: AsyncSession, merchant_id: uuid.UUID, delivery_id: uuid.UUID) -> Delivery:
    delivery = await repo.get_delivery(session, merchant_id, delivery_id)
    if delivery is None:
        raise DeliveryNotFound()
    return delivery


async def retry_delivery(session: AsyncSession, merchant_id: uuid.UUID, delivery_id: uuid.UUID) -> Delivery:
    """Sends one delivery again now, whatever its state (same id). One in flight is left alone."""
    delivery = await get_delivery(session, merchant_id, delivery_id)
    if delivery.status != DeliveryStatus.delivering:
        await repo.reopen_deliveries(session, merchant_id, ids=[delivery_id], statuses=[
            DeliveryStatus.pending, DeliveryStatus.failed, DeliveryStatus.exhausted, DeliveryStatus.delivered,
        ])
        await session.refresh(delivery)
    return delivery


async def replay(session: AsyncSession, merchant_id: uuid.UUID, data: ReplayIn) -> int:
    """Sends again every delivery made in a time range that was not delivered (or, with
    ``includeDelivered``, every one). Receivers see the same webhook ids."""
    if data.until < data.since:
        raise InvalidWebhookConfiguration("'from' must not be after 'to'")
    if data.endpoint_id is not None:
        await get_endpoint(session, merchant_id, data.endpoint_id)
    statuses = [DeliveryStatus.failed, DeliveryStatus.exhausted]
    if data.include_delivered:
        statuses.append(DeliveryStatus.delivered)
    reopened = await repo.reopen_deliveries(session, merchant_id, since=data.since, until=data.until,
                                            endpoint_id=data.endpoint_id, statuses=statuses)
    return len(reopened)
