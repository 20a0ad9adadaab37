"""Helpers for the notifications tests: settings pointing at the test SMTP server with fast
retries, and a mail sender running in the test's loop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from node.bus import Event
from node.config import Settings
from node.notifications import service
from node.notifications.models import Notification
from node.notifications.sending import MailSender
from node.resources import Resources
from tests.fixtures.smtp import SmtpServer


def mail_settings(resources: Resources, smtp: SmtpServer) -> Settings:
    return resources.settings.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_security": "none", "smtp_timeout_s": 2.0,
        "notification_retry_schedule_s": [0.2, 0.4, 0.8, 1.0, 1.0], "notification_poll_interval_s": 0.1,
        "mail_from": "Open Pay <no-reply@openpay.test>",
    })


@pytest.fixture
def mail(resources: Resources, smtp_server: SmtpServer) -> Settings:
    return mail_settings(resources, smtp_server)


@pytest_asyncio.fixture
async def sender(resources: Resources, mail: Settings) -> AsyncIterator[MailSender]:
    async with run_sender(resources, mail) as running:
        yield running


class run_sender:
    def __init__(self, resources: Resources, settings: Settings) -> None:
        self.sender = MailSender(resources.db, settings)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MailSender:
        self.task = asyncio.ensure_future(self.sender.run(self.stop))
        return self.sender

    async def __aexit__(self, *_: object) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task


def unique_address() -> str:
    return f"to-{uuid.uuid4().hex[:12]}@example.com"


async def request(resources: Resources, template: str, to: str, context: dict[str, Any],
                  merchant_id: uuid.UUID | None = None) -> Event:
    """What the bus consumer does with one ``email.requested`` message."""
    event = Event(uuid.uuid4(), "email.requested", to, datetime.now(UTC), {
        "template": template, "to": to, "merchantId": str(merchant_id) if merchant_id else None, "context": context,
    })
    async with resources.db.unit_of_work() as session:
        await service.on_email_requested(session, event)
    return event


async def logged(resources: Resources, to: str) -> list[Notification]:
    async with resources.db.unit_of_work() as session:
        return list((await session.execute(
            select(Notification).where(Notification.recipient == to).order_by(Notification.created_at)
        )).scalars().all())
