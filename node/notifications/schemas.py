"""Pydantic shapes of the notifications API (camelCase on the wire)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from node.notifications.catalog import SPECS
from node.notifications.models import EmailTemplate, Notification

MAX_PART = 100_000


def rfc3339(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class TemplateIn(_In):
    subject: str = Field(min_length=1, max_length=500)
    body_text: str = Field(min_length=1, max_length=MAX_PART)
    body_html: str = Field(min_length=1, max_length=MAX_PART)


class PreviewIn(_In):
    subject: str | None = Field(None, max_length=500)
    body_text: str | None = Field(None, max_length=MAX_PART)
    body_html: str | None = Field(None, max_length=MAX_PART)
    context: dict[str, Any] | None = None


class PreferencesIn(_In):
    payments: bool | None = None
    withdrawals: bool | None = None
    settlements: bool | None = None
    subscriptions: bool | None = None


def template_out(row: EmailTemplate, *, with_body: bool = True) -> dict[str, Any]:
    spec = SPECS[row.name]
    out: dict[str, Any] = {
        "name": row.name, "description": spec.description, "version": row.version, "active": row.active,
        "requiredKeys": list(spec.required), "optionalKeys": list(spec.optional), "category": spec.category,
        "subject": row.subject, "createdAt": rfc3339(row.created_at),
        "createdBy": str(row.created_by) if row.created_by else None,
    }
    if with_body:
        out.update(bodyText=row.body_text, bodyHtml=row.body_html)
    return out


def notification_out(row: Notification, *, with_body: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(row.id), "channel": row.channel, "template": row.template,
        "templateVersion": row.template_version, "merchantId": str(row.merchant_id) if row.merchant_id else None,
        "to": row.recipient, "subject": row.subject, "status": row.status, "attempts": row.attempts,
        "lastError": row.last_error, "createdAt": rfc3339(row.created_at), "sentAt": rfc3339(row.sent_at),
    }
    if with_body:
        out.update(bodyText=row.body_text, bodyHtml=row.body_html)
    return out
