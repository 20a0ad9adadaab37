"""The bus consumers the worker role runs; each domain adds its own here."""

from __future__ import annotations

import asyncio
from typing import Protocol

from node.bus import Consumer
from node.resources import Resources


class Runner(Protocol):
    """Anything the worker runs until stopped: a bus ``Consumer`` or a domain's own loop
    (the webhook dispatcher, the mail sender)."""

    async def run(self, stop: asyncio.Event) -> None: ...


def consumers(resources: Resources) -> list[Consumer | Runner]:
    from node.notifications.tasks import email_request_consumer, mail_sender, merchant_event_consumer
    from node.webhooks.tasks import webhook_consumer, webhook_dispatcher

    return [
        webhook_consumer(resources), webhook_dispatcher(resources),
        email_request_consumer(resources), merchant_event_consumer(resources), mail_sender(resources),
    ]
