"""What the worker role runs for notifications."""

from __future__ import annotations

from node.bus import Consumer
from node.notifications.sending import MailSender
from node.notifications.service import EMAIL_REQUESTED, MERCHANT_EVENT_TYPES, on_email_requested, on_merchant_event
from node.resources import Resources


def email_request_consumer(resources: Resources) -> Consumer:
    return Consumer(resources.db, resources.js, resources.settings, name="notifications-email",
                    event_types=[EMAIL_REQUESTED], handler=on_email_requested, shared_transaction=True)


def merchant_event_consumer(resources: Resources) -> Consumer:
    return Consumer(resources.db, resources.js, resources.settings, name="notifications-events",
                    event_types=MERCHANT_EVENT_TYPES, handler=on_merchant_event, shared_transaction=True)


def mail_sender(resources: Resources) -> MailSender:
    return MailSender(resources.db, resources.settings)
