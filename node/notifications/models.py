"""Tables of the notifications schema: template versions, preferences, the notification log."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base

SCHEMA = "notifications"


class NotificationStatus(StrEnum):
    pending = "PENDING"
    sending = "SENDING"  # claimed by a mail sender; its lease is ``next_attempt_at``
    sent = "SENT"
    retrying = "RETRYING"  # the last try failed, another is scheduled
    failed = "FAILED"  # rendering failed or tries ran out; an admin may resend
    skipped = "SKIPPED"  # the merchant turned this kind of e-mail off


class EmailTemplate(Base):
    """One version of one template; exactly one version per name is active."""

    __tablename__ = "email_templates"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        Index("uq_email_templates_active", "name", unique=True, postgresql_where=text("active")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))  # admin id; None = shipped default
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Preference(Base):
    __tablename__ = "preferences"
    __table_args__ = {"schema": SCHEMA}

    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    category: Mapped[str] = mapped_column(String(50), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Notification(Base):
    """The notification log: one e-mail, rendered when requested, sent by the mail sender."""

    __tablename__ = "notifications"
    __table_args__ = (
        # a redelivered request adds nothing
        UniqueConstraint("source_id", "template", "recipient"),
        Index("ix_notifications_due", "next_attempt_at",
              postgresql_where=text("status IN ('PENDING', 'SENDING', 'RETRYING')")),
        Index("ix_notifications_merchant_id_created_at", "merchant_id", "created_at"),
        Index("ix_notifications_created_at", "created_at"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    source_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))  # the bus message asking for it
    channel: Mapped[str] = mapped_column(String(10), default="EMAIL")
    template: Mapped[str] = mapped_column(String(100))
    template_version: Mapped[int | None] = mapped_column(Integer)
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    recipient: Mapped[str] = mapped_column(String(320))
    context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    subject: Mapped[str | None] = mapped_column(String(500))
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default=NotificationStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
