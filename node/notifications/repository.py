"""All SQL of the notifications domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from node.notifications.catalog import TemplateText
from node.notifications.models import EmailTemplate, Notification, NotificationStatus, Preference

WAKE_CHANNEL = "notifications_mail"


# --- templates ---

async def active_template(session: AsyncSession, name: str) -> EmailTemplate | None:
    return (await session.execute(
        select(EmailTemplate).where(EmailTemplate.name == name, EmailTemplate.active.is_(True))
    )).scalar_one_or_none()


async def active_templates(session: AsyncSession) -> Sequence[EmailTemplate]:
    return (await session.execute(
        select(EmailTemplate).where(EmailTemplate.active.is_(True)).order_by(EmailTemplate.name)
    )).scalars().all()


async def template_versions(session: AsyncSession, name: str) -> Sequence[EmailTemplate]:
    return (await session.execute(
        select(EmailTemplate).where(EmailTemplate.name == name).order_by(EmailTemplate.version.desc())
    )).scalars().all()


async def seed_default(session: AsyncSession, name: str, text_: TemplateText) -> None:
    """Version 1 from the shipped files, active, unless the template exists already."""
    await session.execute(
        insert(EmailTemplate)
        .values(id=uuid.uuid4(), name=name, version=1, subject=text_.subject, body_text=text_.body_text,
                body_html=text_.body_html, active=True, created_by=None)
        .on_conflict_do_nothing()
    )


async def lock_template(session: AsyncSession, name: str) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                          {"k": f"notifications.template:{name}"})


async def add_version(
    session: AsyncSession, name: str, text_: TemplateText, created_by: uuid.UUID | None,
) -> EmailTemplate:
    """A new version, made the active one (call under ``lock_template``)."""
    latest = (await session.execute(
        select(func.max(EmailTemplate.version)).where(EmailTemplate.name == name)
    )).scalar_one()
    await session.execute(update(EmailTemplate).where(EmailTemplate.name == name, EmailTemplate.active.is_(True))
                          .values(active=False))
    row = EmailTemplate(id=uuid.uuid4(), name=name, version=(latest or 0) + 1, subject=text_.subject,
                        body_text=text_.body_text, body_html=text_.body_html, active=True, created_by=created_by)
    session.add(row)
    await session.flush()
    return row


async def activate_version(session: AsyncSession, name: str, version: int) -> EmailTemplate | None:
    row = (await session.execute(
        select(EmailTemplate).where(EmailTemplate.name == name, EmailTemplate.version == version)
    )).scalar_one_or_none()
    if row is None:
        return None
    await session.execute(update(EmailTemplate).where(EmailTemplate.name == name, EmailTemplate.active.is_(True))
                          .values(active=False))
    await session.flush()
    row.active = True
    await session.flush()
    return row


# --- preferences ---

async def preferences(session: AsyncSession, merchant_id: uuid.UUID) -> dict[str, bool]:
    rows = (await session.execute(select(Preference).where(Preference.merchant_id == merchant_id))).scalars()
    return {row.category: row.enabled for row in rows}


async def set_preference(session: AsyncSession, merchant_id: uuid.UUID, category: str, enabled: bool) -> None:
    await session.execute(
        insert(Preference).values(merchant_id=merchant_id, category=category, enabled=enabled)
        .on_conflict_do_update(index_elements=[Preference.merchant_id, Preference.category],
                               set_={"enabled": enabled, "updated_at": func.now()})
    )


# --- the log ---

async def insert_notification(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID | None:
    """Idempotent on (source, template, recipient); None when it existed."""
    row = (await session.execute(
        insert(Notification).values(id=uuid.uuid4(), **values)
        .on_conflict_do_nothing(index_elements=[Notification.source_id, Notification.template,
                                                Notification.recipient])
        .returning(Notification.id)
    )).first()
    if row is not None and values.get("status") == NotificationStatus.pending:
        await wake_senders(session)
    return None if row is None else row[0]


async def wake_senders(session: AsyncSession) -> None:
    await session.execute(text(f"NOTIFY {WAKE_CHANNEL}"))


async def claim_due(session: AsyncSession, limit: int, lease_s: float) -> Sequence[Notification]:
    """Due e-mails (new, to retry, or held by a sender whose lease ended), leased to this sender."""
    due = (
        select(Notification.id)
        .where(Notification.status.in_([NotificationStatus.pending, NotificationStatus.retrying,
                                        NotificationStatus.sending]),
               Notification.next_attempt_at <= func.now())
        .order_by(Notification.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (await session.execute(
        update(Notification).where(Notification.id.in_(due))
        .values(status=NotificationStatus.sending, attempts=Notification.attempts + 1,
                next_attempt_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_s))
        .returning(Notification)
    )).scalars().all()


async def finish(
    session: AsyncSession, notification_id: uuid.UUID, *, status: str, error: str | None,
    next_attempt_at: datetime | None, sent: bool,
) -> None:
    values: dict[str, Any] = {"status": status, "last_error": error}
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if sent:
        values["sent_at"] = func.now()
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.status == NotificationStatus.sending)
        .values(**values)
    )


async def get_notification(
    session: AsyncSession, notification_id: uuid.UUID, merchant_id: uuid.UUID | None = None,
) -> Notification | None:
    conditions = [Notification.id == notification_id]
    if merchant_id is not None:
        conditions.append(Notification.merchant_id == merchant_id)
    return (await session.execute(select(Notification).where(*conditions))).scalar_one_or_none()


async def list_notifications(
    session: AsyncSession, *, merchant_id: uuid.UUID | None, status: str | None, template: str | None,
    recipient: str | None, offset: int, limit: int,
) -> tuple[Sequence[Notification], int]:
    conditions: list[Any] = []
    if merchant_id is not None:
        conditions.append(Notification.merchant_id == merchant_id)
    if status:
        conditions.append(Notification.status == status)
    if template:
        conditions.append(Notification.template == template)
    if recipient:
        conditions.append(func.lower(Notification.recipient) == recipient.lower())
    where = and_(True, *conditions)
    total = (await session.execute(select(func.count()).select_from(Notification).where(where))).scalar_one()
    rows = (await session.execute(
        select(Notification).where(where).order_by(Notification.created_at.desc()).offset(offset).limit(limit)
    )).scalars().all()
    return rows, int(total)
