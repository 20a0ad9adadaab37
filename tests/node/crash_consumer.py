"""A consumer process for the crash tests: applies each message as one row in
``public.crash_effects`` through the real ``node.bus.Consumer``.

Run: python -m tests.node.crash_consumer <consumer-name> <event-type>
"""

from __future__ import annotations

import asyncio
import signal
import sys

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from node.bus import Consumer, Event, connect_nats, ensure_streams
from node.config import Settings
from node.db import Database


async def apply(session: AsyncSession, event: Event) -> None:
    await session.execute(
        text("INSERT INTO public.crash_effects (message_id, state_id) VALUES (:m, :s)"),
        {"m": event.id, "s": event.data["state_id"]},
    )


async def main(name: str, event_type: str) -> None:
    settings = Settings()
    db = Database.from_settings(settings)
    nc = await connect_nats(settings, name)
    js = nc.jetstream()
    await ensure_streams(js, settings)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    consumer = Consumer(db, js, settings, name=name, event_types=[event_type], handler=apply)
    await consumer.run(stop)
    await nc.close()
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
