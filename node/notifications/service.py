"""The rules of notifications: which e-mail a request or an event becomes, templates
(versions, preview), preferences. Functions take the session first and never commit."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from node.bus import Event
from node.config import Settings
from node.notifications import repository as repo
from node.notifications.catalog import (
    EVENT_TEMPLATES,
    OPTIONAL_CATEGORIES,
    SPECS,
    TemplateSpec,
    TemplateText,
    default_text,
)
from node.notifications.errors import InvalidTemplate, NotificationNotFound, TemplateNotFound
from node.notifications.models import EmailTemplate, Notification, NotificationStatus
from node.notifications.rendering import Rendered, RenderError, check_syntax, render

log = structlog.get_logger(__name__)

EMAIL_REQUESTED = "email.requested"
# bus events e-mailed to merchants (JetStream subject filters)
MERCHANT_EVENT_TYPES = sorted(EVENT_TEMPLATES)


def spec_of(name: str) -> TemplateSpec:
    spec = SPECS.get(name)
    if spec is None:
        raise TemplateNotFound(name)
    return spec


# --- templates ---

async def active_template(session: AsyncSession, name: str) -> EmailTemplate:
    """The active version; the shipped default is stored as version 1 on first use."""
    spec_of(name)
    row = await repo.active_template(session, name)
    if row is None:
        await repo.seed_default(session, name, default_text(name))
        row = await repo.active_template(session, name)
        assert row is not None
    return row


async def all_templates(session: AsyncSession) -> list[EmailTemplate]:
    rows = {row.name: row for row in await repo.active_templates(session)}
    for name in SPECS:
        if name not in rows:
            rows[name] = await active_template(session, name)
    return [rows[name] for name in sorted(rows) if name in SPECS]


async def template_versions(session: AsyncSession, name: str) -> list[EmailTemplate]:
    await active_template(session, name)
    return list(await repo.template_versions(session, name))


def _checked(spec: TemplateSpec, text: TemplateText) -> Rendered:
    try:
        check_syntax(text)
        return render(spec, text, spec.sample)  # must render its own sample
    except RenderError as exc:
        raise InvalidTemplate(f"invalid template: {exc}") from None


async def save_version(
    session: AsyncSession, name: str, text: TemplateText, admin_id: uuid.UUID | None,
) -> EmailTemplate:
    spec = spec_of(name)
    _checked(spec, text)
    await active_template(session, name)
    await repo.lock_template(session, name)
    return await repo.add_version(session, name, text, admin_id)


async def reset_to_default(session: AsyncSession, name: str, admin_id: uuid.UUID | None) -> EmailTemplate:
    spec_of(name)  # an unknown name is a 404 before any default file is looked for
    return await save_version(session, name, default_text(name), admin_id)


async def activate_version(session: AsyncSession, name: str, version: int) -> EmailTemplate:
    spec_of(name)
    await repo.lock_template(session, name)
    row = await repo.activate_version(session, name, version)
    if row is None:
        raise TemplateNotFound(f"{name} v{version}")
    return row


async def preview(
    session: AsyncSession, name: str, *, subject: str | None = None, body_text: str | None = None,
    body_html: str | None = None, context: dict[str, Any] | None = None,
) -> Rendered:
    """Renders the active version, or the given draft parts over it, with the given or sample context."""
    spec = spec_of(name)
    active = await active_template(session, name)
    text = TemplateText(
        subject=subject if subject is not None else active.subject,
        body_text=body_text if body_text is not None else active.body_text,
        body_html=body_html if body_html is not None else active.body_html,
    )
    try:
        check_syntax(text)
        return render(spec, text, context if context is not None else spec.sample)
    except RenderError as exc:
        raise InvalidTemplate(f"invalid template: {exc}") from None


# --- preferences ---

async def preferences(session: AsyncSession, merchant_id: uuid.UUID) -> dict[str, bool]:
    stored = await repo.preferences(session, merchant_id)
    return {category: stored.get(category, True) for category in OPTIONAL_CATEGORIES}


async def set_preferences(session: AsyncSession, merchant_id: uuid.UUID, changes: dict[str, bool]) -> dict[str, bool]:
    for category, enabled in changes.items():
        if category not in OPTIONAL_CATEGORIES:
            raise InvalidTemplate(f"unknown notification category {category!r}", code="VALIDATION_ERROR")
        await repo.set_preference(session, merchant_id, category, enabled)
    return await preferences(session, merchant_id)


# --- requests -> the log ---

async def request_email(
    session: AsyncSession, *, source_id: uuid.UUID, template: str, to: str, merchant_id: uuid.UUID | None,
    context: dict[str, Any],
) -> uuid.UUID | None:
    """One e-mail in the log, rendered now with the active template. A request that cannot be
    rendered is logged FAILED (with why); one the merchant turned off is logged SKIPPED."""
    values: dict[str, Any] = {
        "source_id": source_id, "template": template, "merchant_id": merchant_id, "recipient": to,
        "context": context, "status": NotificationStatus.pending, "attempts": 0,
    }
    spec = SPECS.get(template)
    if spec is None:
        values.update(status=NotificationStatus.failed, last_error=f"unknown template {template!r}")
        return await repo.insert_notification(session, values)
    if (merchant_id is not None and spec.category in OPTIONAL_CATEGORIES
            and not (await preferences(session, merchant_id))[spec.category]):
        values.update(status=NotificationStatus.skipped, last_error=f"{spec.category} e-mails are off")
        return await repo.insert_notification(session, values)
    row = await active_template(session, template)
    values["template_version"] = row.version
    try:
        rendered = render(spec, TemplateText(row.subject, row.body_text, row.body_html), context)
    except RenderError as exc:
        values.update(status=NotificationStatus.failed, last_error=f"render: {exc}"[:1000])
        return await repo.insert_notification(session, values)
    values.update(subject=rendered.subject, body_text=rendered.body_text, body_html=rendered.body_html)
    return await repo.insert_notification(session, values)


async def on_email_requested(session: AsyncSession, event: Event) -> None:
    data = event.data
    merchant = data.get("merchantId")
    await request_email(
        session, source_id=event.id, template=str(data.get("template")), to=str(data.get("to") or ""),
        merchant_id=uuid.UUID(str(merchant)) if merchant else None, context=dict(data.get("context") or {}),
    )


async def on_merchant_event(session: AsyncSession, event: Event) -> None:
    """A payment, withdrawal, settlement or subscription event, e-mailed to the merchant's
    contact address (looked up through the merchants service)."""
    from node.merchants import service as merchants
    from node.merchants.errors import MerchantNotFound

    mapping = EVENT_TEMPLATES.get(event.type)
    if mapping is None:
        return
    template, key = mapping
    try:
        merchant_id = uuid.UUID(str(event.data["merchantId"]))
    except (KeyError, ValueError, TypeError):
        return
    try:
        merchant = await merchants.get(session, merchant_id)
    except MerchantNotFound:
        log.info("notification for an unknown merchant", event_type=event.type, merchant_id=str(merchant_id))
        return
    await request_email(session, source_id=event.id, template=template, to=merchant.email, merchant_id=merchant_id,
                        context={"businessName": merchant.business_name, key: event.data})


# --- sending outcomes ---

def after_send(
    settings: Settings, attempt: int, error: str | None, now: datetime, rng: random.Random | None = None,
) -> tuple[str, datetime | None]:
    if error is None:
        return NotificationStatus.sent, None
    schedule = settings.notification_retry_schedule_s
    if attempt > len(schedule):
        return NotificationStatus.failed, None
    wait = schedule[attempt - 1] * (1 + (rng or random).uniform(-0.1, 0.1))
    return NotificationStatus.retrying, now + timedelta(seconds=wait)


async def resend(session: AsyncSession, notification_id: uuid.UUID) -> Notification:
    """Sends a logged e-mail again (re-rendered with the active template if it never rendered)."""
    row = await repo.get_notification(session, notification_id)
    if row is None:
        raise NotificationNotFound()
    if row.subject is None:
        spec = spec_of(row.template)
        active = await active_template(session, row.template)
        try:
            rendered = render(spec, TemplateText(active.subject, active.body_text, active.body_html), row.context)
        except RenderError as exc:
            raise InvalidTemplate(f"cannot render: {exc}") from None
        row.subject, row.body_text, row.body_html = rendered.subject, rendered.body_text, rendered.body_html
        row.template_version = active.version
    row.status = NotificationStatus.pending
    row.attempts = 0
    row.last_error = None
    row.next_attempt_at = datetime.now(UTC)
    await session.flush()
    await repo.wake_senders(session)
    return row
