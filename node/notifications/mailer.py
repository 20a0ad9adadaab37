"""E-mail transport behind a Protocol; SMTP (aiosmtplib) is the one implementation."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

import aiosmtplib

from node.config import Settings


class Mailer(Protocol):
    async def send(self, messages: list[EmailMessage]) -> list[str | None]:
        """Sends each message; returns, per message, None when accepted or why not."""
        ...


def build_message(
    settings: Settings, *, notification_id: uuid.UUID, template: str, to: str, subject: str, body_text: str,
    body_html: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    # the same id on every retry, so a receiving server or client can drop a repeat
    message["Message-ID"] = f"<{notification_id}@openpay>"
    message["X-Openpay-Template"] = template
    message["X-Openpay-Notification-Id"] = str(notification_id)
    message.set_content(body_text)
    message.add_alternative(body_html, subtype="html")
    return message


class SmtpMailer:
    """One SMTP connection per batch; host, port, STARTTLS or implicit TLS, auth from settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        security = s.smtp_security.lower()
        return aiosmtplib.SMTP(
            hostname=s.smtp_host, port=s.smtp_port, use_tls=security == "tls",
            start_tls=security == "starttls", validate_certs=s.smtp_validate_certs,
            username=s.smtp_username, password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            timeout=s.smtp_timeout_s,
        )

    async def send(self, messages: list[EmailMessage]) -> list[str | None]:
        if not messages:
            return []
        client = self._client()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            return [f"connect: {type(exc).__name__}: {exc}"[:500]] * len(messages)
        results: list[str | None] = []
        try:
            for message in messages:
                try:
                    await client.send_message(message)
                    results.append(None)
                except aiosmtplib.SMTPServerDisconnected as exc:
                    results.append(f"{type(exc).__name__}: {exc}"[:500])
                    results.extend(["not sent: connection lost"] * (len(messages) - len(results)))
                    break
                except (aiosmtplib.SMTPException, OSError) as exc:
                    results.append(f"{type(exc).__name__}: {exc}"[:500])
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        return results
