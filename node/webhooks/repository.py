"""All SQL of the webhooks domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from node.webhooks.models import (
    OPEN_STATUSES,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Endpoint,
    SigningKey,
)

WAKE_CHANNEL = "webhooks_deliveries"
DELIVERIES: Table = Delivery.__table__  # type: ignore[assignment]


# --- keys ---

async def active_key(session: AsyncSession, merchant_id: uuid.UUID) -> SigningKey | None:
    return (await session.execute(
        select(SigningKey).where(SigningKey.merchant_id == merchant_id, SigningKey.retired_at.is_(None))
    )).scalar_one_or_none()


async def valid_keys(session: AsyncSession, merchant_id: uuid.UUID) -> Sequence[SigningKey]:
    """The active key first, then rotated-out keys still in their grace period, newest first."""
    return (await session.execute(
        select(SigningKey)
        .where(SigningKey.merchant_id == merchant_id,
               or_(SigningKey.retired_at.is_(None), SigningKey.valid_until > func.now()))
        .order_by(SigningKey.retired_at.desc().nulls_first(), SigningKey.created_at.desc())
    )).scalars().all()


async def retire_active_key(session: AsyncSession, merchant_id: uuid.UUID, valid_until: datetime) -> None:
    await session.execute(
        update(SigningKey)
        .where(SigningKey.merchant_id == merchant_id, SigningKey.retired_at.is_(None))
        .values(retired_at=func.now(), valid_until=valid_until)
    )


async def insert_key(session: AsyncSession, merchant_id: uuid.UUID, public: bytes, sealed: bytes) -> SigningKey:
    key = SigningKey(id=uuid.uuid4(), merchant_id=merchant_id, public_key=public, private_key_sealed=sealed)
    session.add(key)
    await session.flush()
    return key


async def lock_merchant_keys(session: AsyncSession, merchant_id: uuid.UUID) -> None:
    """Serialises key creation and rotation of one merchant (transaction-scoped advisory lock)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                          {"k": f"webhooks.keys:{merchant_id}"})


# --- endpoints ---

async def get_endpoint(session: AsyncSession, merchant_id: uuid.UUID, endpoint_id: uuid.UUID) -> Endpoint | None:
    return (await session.execute(
        select(Endpoint).where(Endpoint.id == endpoint_id, Endpoint.merchant_id == merchant_id,
                               Endpoint.deleted_at.is_(None))
    )).scalar_one_or_none()


async def list_endpoints(session: AsyncSession, merchant_id: uuid.UUID) -> Sequence[Endpoint]:
    return (await session.execute(
        select(Endpoint).where(Endpoint.merchant_id == merchant_id, Endpoint.deleted_at.is_(None))
        .order_by(Endpoint.created_at)
    )).scalars().all()


async def sdk_endpoint(session: AsyncSession, merchant_id: uuid.UUID) -> Endpoint | None:
    return (await session.execute(
        select(Endpoint).where(Endpoint.merchant_id == merchant_id, Endpoint.is_sdk.is_(True))
    )).scalar_one_or_none()


async def upsert_sdk_endpoint(session: AsyncSession, merchant_id: uuid.UUID, url: str, mode: str) -> Endpoint:
    row = (await session.execute(
        insert(Endpoint)
        .values(id=uuid.uuid4(), merchant_id=merchant_id, url=url, events=["payment.*"], mode=mode,
                enabled=True, description="SDK webhook", is_sdk=True)
        .on_conflict_do_update(
            index_elements=[Endpoint.merchant_id], index_where=text("is_sdk"),
            set_={"url": url, "mode": mode, "enabled": True, "deleted_at": None, "updated_at": func.now()},
        )
        .returning(Endpoint)
    )).scalar_one()
    return row


async def park_deliveries(session: AsyncSession, endpoint_id: uuid.UUID, *, parked: bool) -> None:
    """A disabled endpoint's open deliveries wait at 'infinity', off the due index the claims walk;
    enabling it makes them due now."""
    if parked:
        await session.execute(text(
            "UPDATE webhooks.deliveries SET next_attempt_at = 'infinity' "
            "WHERE endpoint_id = :e AND status IN ('PENDING', 'FAILED')"), {"e": endpoint_id})
    else:
        await session.execute(text(
            "UPDATE webhooks.deliveries SET next_attempt_at = now() "
            "WHERE endpoint_id = :e AND status IN ('PENDING', 'FAILED') AND next_attempt_at = 'infinity'"),
            {"e": endpoint_id})
        await wake_dispatchers(session)


# --- deliveries ---

@dataclass(frozen=True)
class NewDelivery:
    endpoint_id: uuid.UUID
    merchant_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    ordering_key: str | None
    occurred_at: datetime
    body: bytes


async def insert_deliveries(session: AsyncSession, rows: Sequence[NewDelivery]) -> int:
    """Idempotent on (event id, endpoint): a redelivered bus message adds nothing."""
    if not rows:
        return 0
    result = await session.execute(
        insert(Delivery)
        .values([{
            "id": uuid.uuid4(), "endpoint_id": r.endpoint_id, "merchant_id": r.merchant_id,
            "event_id": r.event_id, "event_type": r.event_type, "ordering_key": r.ordering_key,
            "occurred_at": r.occurred_at, "body": r.body, "status": DeliveryStatus.pending,
            "attempts": 0,
        } for r in rows])
        .on_conflict_do_nothing(index_elements=[Delivery.event_id, Delivery.endpoint_id])
        .returning(Delivery.id)
    )
    created = len(result.all())
    if created:
        await wake_dispatchers(session)
    return created


_FOR_EVENT = text(f"""
WITH created AS (
    INSERT INTO webhooks.deliveries
        (id, endpoint_id, merchant_id, event_id, event_type, ordering_key, occurred_at, body, status, attempts)
    SELECT gen_random_uuid(), e.id, e.merchant_id, :event_id, :event_type, :ordering_key, :occurred_at, :body,
           'PENDING', 0
    FROM webhooks.endpoints e
    WHERE e.merchant_id = :merchant_id AND e.enabled AND e.deleted_at IS NULL
      AND e.events && CAST(:patterns AS varchar[])
      AND (CAST(:mode AS varchar) IS NULL OR e.mode = CAST(:mode AS varchar))
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING 1
), counted AS (SELECT count(*) AS n FROM created)
SELECT n, CASE WHEN n > 0 THEN pg_notify('{WAKE_CHANNEL}', '')::text END AS woken FROM counted
""")


async def insert_event_deliveries(
    session: AsyncSession, *, merchant_id: uuid.UUID, event_id: uuid.UUID, event_type: str,
    ordering_key: str | None, occurred_at: datetime, body: bytes, patterns: Sequence[str], mode: str | None,
) -> int:
    """One delivery per enabled endpoint of the merchant whose filter holds one of ``patterns``
    (and whose mode is ``mode``, when given), and the dispatchers' wake-up: one round trip.
    Idempotent on (event id, endpoint)."""
    return int((await session.execute(_FOR_EVENT, {
        "merchant_id": merchant_id, "event_id": event_id, "event_type": event_type, "ordering_key": ordering_key,
        "occurred_at": occurred_at, "body": body, "patterns": list(patterns), "mode": mode,
    })).scalar_one())


async def wake_dispatchers(session: AsyncSession) -> None:
    # NOTIFY is delivered when the transaction commits, so a woken dispatcher sees the rows
    await session.execute(text(f"NOTIFY {WAKE_CHANNEL}"))


@dataclass(frozen=True)
class ClaimedDelivery:
    id: uuid.UUID
    merchant_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_type: str
    body: bytes
    attempt: int
    url: str
    mode: str


_CLAIM = text("""
WITH candidates AS (
    SELECT d.id, d.endpoint_id, d.next_attempt_at
    FROM webhooks.deliveries d
    WHERE d.status IN ('PENDING', 'DELIVERING', 'FAILED') AND d.next_attempt_at <= now()
      AND NOT (d.endpoint_id = ANY(CAST(:saturated AS uuid[])))
      -- a scalar subquery, not EXISTS: the planner then walks the due index in order and
      -- stops at the limit instead of joining every open delivery of every endpoint
      AND (SELECT e.enabled AND e.deleted_at IS NULL FROM webhooks.endpoints e WHERE e.id = d.endpoint_id)
      AND (d.ordering_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM webhooks.deliveries p
          WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key
            AND p.status IN ('PENDING', 'DELIVERING', 'FAILED')
            AND (p.occurred_at, p.seq) < (d.occurred_at, d.seq)))
    ORDER BY d.next_attempt_at
    LIMIT :scan
    FOR UPDATE OF d SKIP LOCKED
), picked AS (
    SELECT id FROM (
        SELECT id, row_number() OVER (PARTITION BY endpoint_id ORDER BY next_attempt_at) AS rank
        FROM candidates
    ) ranked
    WHERE rank <= :per_endpoint
    LIMIT :limit
)
UPDATE webhooks.deliveries d
SET status = 'DELIVERING', attempts = d.attempts + 1, last_attempt_at = now(),
    next_attempt_at = now() + make_interval(secs => :lease_s)
FROM webhooks.endpoints e
WHERE d.id = ANY(ARRAY(SELECT id FROM picked)) AND e.id = d.endpoint_id
RETURNING d.id, d.merchant_id, d.endpoint_id, d.event_type, d.body, d.attempts, e.url, e.mode
""")


async def claim_due(
    session: AsyncSession | AsyncConnection, *, limit: int, per_endpoint: int, lease_s: float,
    saturated: Sequence[uuid.UUID],
) -> list[ClaimedDelivery]:
    """Takes due deliveries for sending: open ones whose time has come, that no earlier open
    delivery of the same key to the same endpoint precedes. A claim is a lease: a worker that
    dies leaves the delivery DELIVERING until the lease ends, then it is due again."""
    rows = (await session.execute(_CLAIM, {
        "saturated": list(saturated), "scan": limit * 2, "per_endpoint": per_endpoint, "limit": limit,
        "lease_s": lease_s,
    })).all()
    return [ClaimedDelivery(r.id, r.merchant_id, r.endpoint_id, r.event_type, r.body, r.attempts, r.url, r.mode)
            for r in rows]


async def analyze_deliveries(conn: AsyncConnection) -> None:
    """Fresh planner statistics for the deliveries table (ANALYZE samples it; it does not block writes)."""
    await conn.execute(text("ANALYZE webhooks.deliveries"))


@dataclass(frozen=True)
class AttemptRecord:
    delivery_id: uuid.UUID
    attempt: int
    started_at: datetime
    success: bool
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None
    # the delivery's next state
    status: str
    next_attempt_at: datetime | None


_RECORD = text("""
WITH done AS (
    SELECT * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:attempts AS integer[]), CAST(:started AS timestamptz[]),
        CAST(:success AS boolean[]), CAST(:codes AS integer[]), CAST(:latency AS integer[]),
        CAST(:excerpts AS text[]), CAST(:errors AS text[]), CAST(:statuses AS varchar[]),
        CAST(:next AS timestamptz[])
    ) AS t(delivery_id, attempt, started_at, success, status_code, latency_ms, response_excerpt, error,
           status, next_attempt_at)
), logged AS (
    INSERT INTO webhooks.attempts
        (delivery_id, attempt, started_at, success, status_code, latency_ms, response_excerpt, error)
    SELECT delivery_id, attempt, started_at, success, status_code, latency_ms, response_excerpt, error FROM done
), moved AS (
    UPDATE webhooks.deliveries d
    SET status = done.status, next_attempt_at = coalesce(done.next_attempt_at, d.next_attempt_at),
        delivered_at = CASE WHEN done.success THEN done.started_at END, last_status_code = done.status_code,
        last_error = done.error
    FROM done
    WHERE d.id = done.delivery_id AND d.status = 'DELIVERING' AND d.attempts = done.attempt
    RETURNING d.id, d.status, d.endpoint_id, d.ordering_key, d.occurred_at, d.seq, d.next_attempt_at
)
-- the later deliveries of a failing delivery's key wait for it anyway; moving their time to its
-- retry keeps them off the due index, so claims do not walk past them during an outage
UPDATE webhooks.deliveries f SET next_attempt_at = GREATEST(f.next_attempt_at, moved.next_attempt_at)
FROM moved
WHERE moved.status = 'FAILED' AND moved.ordering_key IS NOT NULL
  AND f.endpoint_id = moved.endpoint_id AND f.ordering_key = moved.ordering_key AND f.status = 'PENDING'
  AND (f.occurred_at, f.seq) > (moved.occurred_at, moved.seq)
""")


async def record_attempts(session: AsyncSession | AsyncConnection, records: Sequence[AttemptRecord]) -> None:
    """Writes finished attempts and moves their deliveries on: one statement for the batch
    (atomic by itself, so it needs no transaction around it). Only a delivery still DELIVERING
    in the same round is moved, so a late result cannot undo a replay."""
    if not records:
        return
    await session.execute(_RECORD, {
        "ids": [r.delivery_id for r in records], "attempts": [r.attempt for r in records],
        "started": [r.started_at for r in records], "success": [r.success for r in records],
        "codes": [r.status_code for r in records], "latency": [r.latency_ms for r in records],
        "excerpts": [r.response_excerpt for r in records], "errors": [r.error for r in records],
        "statuses": [str(r.status) for r in records], "next": [r.next_attempt_at for r in records],
    })


async def get_delivery(session: AsyncSession, merchant_id: uuid.UUID, delivery_id: uuid.UUID) -> Delivery | None:
    return (await session.execute(
        select(Delivery).where(Delivery.id == delivery_id, Delivery.merchant_id == merchant_id)
    )).scalar_one_or_none()


async def attempts_of(session: AsyncSession, delivery_id: uuid.UUID) -> Sequence[DeliveryAttempt]:
    return (await session.execute(
        select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id).order_by(DeliveryAttempt.id)
    )).scalars().all()


async def list_deliveries(
    session: AsyncSession, merchant_id: uuid.UUID, *, status: str | None, endpoint_id: uuid.UUID | None,
    event_type: str | None, since: datetime | None, until: datetime | None, offset: int, limit: int,
) -> tuple[Sequence[Delivery], int]:
    conditions: list[Any] = [Delivery.merchant_id == merchant_id]
    if status:
        conditions.append(Delivery.status == status)
    if endpoint_id:
        conditions.append(Delivery.endpoint_id == endpoint_id)
    if event_type:
        conditions.append(Delivery.event_type == event_type)
    if since:
        conditions.append(Delivery.created_at >= since)
    if until:
        conditions.append(Delivery.created_at <= until)
    where = and_(*conditions)
    total = (await session.execute(select(func.count()).select_from(Delivery).where(where))).scalar_one()
    rows = (await session.execute(
        select(Delivery).where(where).order_by(Delivery.created_at.desc(), Delivery.seq.desc())
        .offset(offset).limit(limit)
    )).scalars().all()
    return rows, int(total)


async def reopen_deliveries(
    session: AsyncSession, merchant_id: uuid.UUID, *, ids: Sequence[uuid.UUID] | None = None,
    since: datetime | None = None, until: datetime | None = None, endpoint_id: uuid.UUID | None = None,
    statuses: Sequence[str],
) -> list[uuid.UUID]:
    """Starts a new round of attempts now for the matching deliveries (same ids: receivers dedupe)."""
    conditions: list[Any] = [Delivery.merchant_id == merchant_id, Delivery.status.in_(list(statuses))]
    if ids is not None:
        conditions.append(Delivery.id.in_(list(ids)))
    if since is not None:
        conditions.append(Delivery.created_at >= since)
    if until is not None:
        conditions.append(Delivery.created_at <= until)
    if endpoint_id is not None:
        conditions.append(Delivery.endpoint_id == endpoint_id)
    result = await session.execute(
        update(Delivery).where(*conditions)
        .values(status=DeliveryStatus.pending, attempts=0, next_attempt_at=func.now())
        .returning(Delivery.id)
    )
    reopened = [row[0] for row in result.all()]
    if reopened:
        await wake_dispatchers(session)
    return reopened


async def purge_finished(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(
        DELIVERIES.delete().where(Delivery.created_at < before,
                                          Delivery.status.not_in([s.value for s in OPEN_STATUSES]))
    )
    return int(getattr(result, "rowcount", 0) or 0)
