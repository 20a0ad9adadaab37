"""The mail sender of the worker role: sends due e-mails from the log over SMTP.

Rows are leased (a dead sender's rows come back when the lease ends); a failed
send is retried on the settings' schedule, so an SMTP outage delays mail and
loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import structlog
from prometheus_client import Counter

from node.config import Settings
from node.db import Database
from node.notifications import repository as repo
from node.notifications.mailer import Mailer, SmtpMailer, build_message
from node.notifications.service import after_send

log = structlog.get_logger(__name__)

BATCH = 20

EMAILS = Counter("openpay_emails_total", "E-mail sends by outcome (SENT, RETRYING, FAILED)", ["status"])


class MailSender:
    def __init__(self, db: Database, settings: Settings, mailer: Mailer | None = None) -> None:
        self.db = db
        self.settings = settings
        self.mailer = mailer or SmtpMailer(settings)
        self._wake = asyncio.Event()

    def lease_s(self) -> float:
        return self.settings.smtp_timeout_s * (BATCH + 2)

    async def send_due(self) -> int:
        async with self.db.unit_of_work() as session:
            rows = await repo.claim_due(session, BATCH, self.lease_s())
        if not rows:
            return 0
        messages = [build_message(
            self.settings, notification_id=row.id, template=row.template, to=row.recipient,
            subject=row.subject or "", body_text=row.body_text or "", body_html=row.body_html or "",
        ) for row in rows]
        errors = await self.mailer.send(messages)
        now = datetime.now(UTC)
        async with self.db.unit_of_work() as session:
            for row, error in zip(rows, errors, strict=True):
                status, next_at = after_send(self.settings, row.attempts, error, now)
                EMAILS.labels(status).inc()
                await repo.finish(session, row.id, status=status, error=error, next_attempt_at=next_at,
                                  sent=error is None)
        failed = sum(error is not None for error in errors)
        if failed:
            log.warning("e-mails not sent, will retry", failed=failed, error=next(e for e in errors if e))
        return len(rows)

    async def _listen(self) -> object:
        import asyncpg

        conn = await asyncpg.connect(self.db.dsn)
        await conn.add_listener(repo.WAKE_CHANNEL, lambda *_: self._wake.set())
        return conn

    async def run(self, stop: asyncio.Event) -> None:
        listener = await self._listen()
        try:
            while not stop.is_set():
                self._wake.clear()  # before sending, so a wake-up that arrives meanwhile is not lost
                try:
                    sent = await self.send_due()
                except Exception as exc:
                    log.warning("mail sender failed", error=repr(exc))
                    sent = 0
                    await asyncio.sleep(1.0)
                if sent >= BATCH:
                    continue
                with contextlib.suppress(TimeoutError):
                    stopping = asyncio.ensure_future(stop.wait())
                    waking = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait([stopping, waking], timeout=self.settings.notification_poll_interval_s,
                                       return_when=asyncio.FIRST_COMPLETED)
                    stopping.cancel()
                    waking.cancel()
        finally:
            await listener.close()  # type: ignore[attr-defined]
