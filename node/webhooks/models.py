"""Tables of the webhooks schema: signing keys, endpoints, deliveries and their attempts."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base

SCHEMA = "webhooks"


class DeliveryStatus(StrEnum):
    """The original's delivery statuses."""

    pending = "PENDING"  # waiting for its first attempt
    delivering = "DELIVERING"  # claimed by a worker; its lease is ``next_attempt_at``
    delivered = "DELIVERED"
    failed = "FAILED"  # last attempt failed, another is scheduled
    exhausted = "EXHAUSTED"  # attempts ran out: dead-lettered, replayable


# statuses whose delivery is still to happen (the ordering and claiming rules use them)
OPEN_STATUSES = (DeliveryStatus.pending, DeliveryStatus.delivering, DeliveryStatus.failed)
_OPEN_SQL = "status IN ('PENDING', 'DELIVERING', 'FAILED')"


class EndpointMode(StrEnum):
    live = "live"
    test = "test"


class SigningKey(Base):
    """One merchant's ED25519 key pair; the private half encrypted (AES-GCM) with a node secret."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # one active key per merchant
        Index("uq_signing_keys_active", "merchant_id", unique=True, postgresql_where=text("retired_at IS NULL")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    private_key_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # rotated out at; the public key stays valid (published, and co-signing) until valid_until
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Endpoint(Base):
    __tablename__ = "endpoints"
    __table_args__ = (
        # the SDK's single webhook configuration of a merchant
        Index("uq_endpoints_sdk", "merchant_id", unique=True, postgresql_where=text("is_sdk")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    # event type patterns: exact ("payment.paid"), family ("payment.*") or everything ("*")
    events: Mapped[list[str]] = mapped_column(ARRAY(String(100)))
    mode: Mapped[str] = mapped_column(String(10), default=EndpointMode.live)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    is_sdk: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Delivery(Base):
    """One event to one endpoint; its id is the ``webhook-id`` every attempt repeats."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("uq_deliveries_event_id_endpoint_id", "event_id", "endpoint_id", unique=True),
        # the claim query: due open deliveries
        Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text(_OPEN_SQL)),
        # the ordering rule: earlier open deliveries of the same key to the same endpoint
        Index("ix_deliveries_open_by_key", "endpoint_id", "ordering_key", "occurred_at", "seq",
              postgresql_where=text(f"ordering_key IS NOT NULL AND {_OPEN_SQL}")),
        Index("ix_deliveries_merchant_id_created_at", "merchant_id", "created_at"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey(f"{SCHEMA}.endpoints.id", ondelete="CASCADE")
    )
    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[str] = mapped_column(String(100))
    # deliveries with the same key to the same endpoint are made in event order (a payment id)
    ordering_key: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # the exact bytes POSTed on every attempt
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(12), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # in the current round (replays restart it)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DeliveryAttempt(Base):
    """The delivery log: one row per finished attempt."""

    __tablename__ = "attempts"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey(f"{SCHEMA}.deliveries.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    success: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
