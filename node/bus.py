"""The outbox and the bus.

A state change and the message announcing it are written in one transaction
(``announce``). The relay moves unsent outbox rows to NATS JetStream with
``Nats-Msg-Id`` = the message id, so a relay that dies between publishing and
marking rows sent is deduplicated by the stream. Consumers are durable pull
consumers with explicit ack; ``Consumer`` records each message id it applied in
the same transaction as the effect, so a redelivery changes nothing, and moves a
message that keeps failing to the dead-letter stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import orjson
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StreamConfig
from nats.js.errors import BadRequestError
from sqlalchemy import BigInteger, DateTime, Identity, Index, String, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import JSON, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from node.config import Settings
from node.db import Base, Database
from node.metrics import MESSAGES_HANDLED, OUTBOX_BACKLOG, OUTBOX_PUBLISHED

log = structlog.get_logger(__name__)

OUTBOX_CHANNEL = "bus_outbox"


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        {"schema": "bus"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(UUID, unique=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(100))
    # what the message is about (a payment id, ...): consumers keep order per key
    key: Mapped[str | None] = mapped_column(String(200))
    # JSON as written, not JSONB: nothing queries inside a message, the relay only passes it on, and
    # JSONB's parse and build cost PostgreSQL ~18 us of a payment creation's ~60 us insert
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProcessedMessage(Base):
    __tablename__ = "processed_messages"
    __table_args__ = {"schema": "bus"}

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


@dataclass(frozen=True)
class Event:
    """What travels on the bus: the outbox row, as consumers see it."""

    id: uuid.UUID
    type: str
    key: str | None
    created_at: datetime
    data: dict[str, Any]

    def encode(self) -> bytes:
        return orjson.dumps({
            "id": str(self.id), "type": self.type, "key": self.key,
            "createdAt": self.created_at.isoformat(), "data": self.data,
        })

    @classmethod
    def decode(cls, raw: bytes) -> Event:
        body = orjson.loads(raw)
        return cls(
            id=uuid.UUID(body["id"]), type=body["type"], key=body.get("key"),
            created_at=datetime.fromisoformat(body["createdAt"]), data=body["data"],
        )


async def announce(
    session: AsyncSession, type: str, data: dict[str, Any], *, key: str | None = None,
    message_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Write a message to the outbox inside the caller's transaction."""
    message_id = message_id or uuid.uuid4()
    await session.execute(
        insert(OutboxMessage).values(message_id=message_id, type=type, key=key, payload=data)
    )
    return message_id


def subject_for(settings: Settings, event_type: str) -> str:
    return f"{settings.events_subject_prefix}.{event_type}"


async def connect_nats(settings: Settings, name: str) -> NatsClient:
    if not settings.nats_url:
        raise RuntimeError("NATS_URL is not set; run `openpay dev` or configure it")
    return await nats.connect(
        settings.nats_url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
        connect_timeout=5,
    )


async def ensure_streams(js: JetStreamContext, settings: Settings) -> None:
    """Create or update the event and dead-letter streams (safe to call on every start)."""
    configs = [
        StreamConfig(
            name=settings.events_stream, subjects=[f"{settings.events_subject_prefix}.>"],
            retention=RetentionPolicy.LIMITS, max_age=7 * 24 * 3600,
            duplicate_window=settings.stream_duplicate_window_s,
        ),
        StreamConfig(
            name=settings.deadletter_stream, subjects=["deadletter.>"],
            retention=RetentionPolicy.LIMITS, max_age=30 * 24 * 3600,
            duplicate_window=settings.stream_duplicate_window_s,
        ),
    ]
    for config in configs:
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)


class OutboxRelay:
    """Moves committed outbox rows to JetStream. Several may run: rows are claimed
    with ``FOR UPDATE SKIP LOCKED``, and JetStream drops a repeated ``Nats-Msg-Id``."""

    def __init__(self, db: Database, js: JetStreamContext, settings: Settings) -> None:
        self.db = db
        self.js = js
        self.settings = settings
        self._wake = asyncio.Event()

    async def relay_once(self) -> int:
        async with self.db.unit_of_work() as session:
            # claimed and marked in one statement (one round trip less); a failed publish rolls
            # the mark back with the transaction
            claimed = (
                select(OutboxMessage.id)
                .where(OutboxMessage.published_at.is_(None))
                .order_by(OutboxMessage.id)
                .limit(self.settings.relay_batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = sorted((await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(claimed.scalar_subquery()))
                .values(published_at=func.now())
                .returning(OutboxMessage.id, OutboxMessage.message_id, OutboxMessage.type, OutboxMessage.key,
                           OutboxMessage.created_at, OutboxMessage.payload)
                .execution_options(synchronize_session=False)
            )).all(), key=lambda row: row.id)
            if not rows:
                return 0
            # in id order per key: publishes are pipelined, acks awaited together
            await asyncio.gather(*(
                self.js.publish(
                    subject_for(self.settings, row.type),
                    Event(row.message_id, row.type, row.key, row.created_at, row.payload).encode(),
                    headers={"Nats-Msg-Id": str(row.message_id)},
                )
                for row in rows
            ))
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    async def _listen(self) -> Any:
        import asyncpg

        conn = await asyncpg.connect(self.db.dsn)
        await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
        return conn

    async def run(self, stop: asyncio.Event) -> None:
        listener = await self._listen()
        try:
            while not stop.is_set():
                # cleared before reading: a NOTIFY that arrives while we relay wakes the next round
                self._wake.clear()
                sent = await self.relay_once()
                if sent >= self.settings.relay_batch_size:
                    continue
                OUTBOX_BACKLOG.set(0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        _first(stop.wait(), self._wake.wait()), self.settings.relay_poll_interval_s
                    )
        finally:
            await listener.close()

    async def purge_published(self) -> int:
        """Drop relayed rows past retention (a scheduler job)."""
        cutoff = datetime.now(UTC) - timedelta(days=self.settings.outbox_retention_days)
        async with self.db.unit_of_work() as session:
            result = await session.execute(
                delete(OutboxMessage).where(OutboxMessage.published_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)


async def _first(*awaitables: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def claim_message(session: AsyncSession, consumer: str, message_id: uuid.UUID) -> bool:
    """True the first time ``consumer`` sees ``message_id``; the claim commits with the effect."""
    result = await session.execute(
        insert(ProcessedMessage)
        .values(consumer=consumer, message_id=message_id)
        .on_conflict_do_nothing()
        .returning(ProcessedMessage.message_id)
    )
    return result.first() is not None


async def claim_messages(session: AsyncSession, consumer: str, message_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """The ids of ``message_ids`` that ``consumer`` has not seen before; claims them all in one statement."""
    result = await session.execute(
        insert(ProcessedMessage)
        .values([{"consumer": consumer, "message_id": m} for m in message_ids])
        .on_conflict_do_nothing()
        .returning(ProcessedMessage.message_id)
    )
    return set(result.scalars())


Handler = Callable[[AsyncSession, Event], Awaitable[None]]

# after the first message of a fetch, how long to wait for the others the server said were
# waiting (another worker may take some): a pull for several messages holds the ones it has
# until it has them all or it expires
DRAIN_WAIT_S = 0.005


class Consumer:
    """A durable pull consumer that applies each message once, in one transaction."""

    def __init__(
        self, db: Database, js: JetStreamContext, settings: Settings, *, name: str,
        event_types: list[str], handler: Handler, batch: int = 100, shared_transaction: bool = False,
    ) -> None:
        """``batch``: messages taken per fetch (what is waiting, never held back to fill a batch).
        ``shared_transaction``: apply the messages of one fetch in one transaction (one claim, one
        commit), for handlers that only write rows; if any of them fails, each is applied alone."""
        self.db = db
        self.js = js
        self.settings = settings
        self.name = name
        self.handler = handler
        self.batch = batch
        self.shared_transaction = shared_transaction
        self.filters = [subject_for(settings, t) for t in event_types]

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        # add_consumer creates the durable or updates its editable fields (filters, limits)
        await self.js.add_consumer(self.settings.events_stream, ConsumerConfig(
            name=self.name, durable_name=self.name, ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL, ack_wait=self.settings.consumer_ack_wait_s,
            max_deliver=self.settings.consumer_max_deliver + 1, filter_subjects=self.filters,
        ))
        return await self.js.pull_subscribe_bind(durable=self.name, stream=self.settings.events_stream)

    async def handle(self, msg: Msg) -> None:
        event = Event.decode(msg.data)
        try:
            async with self.db.unit_of_work() as session:
                if await claim_message(session, self.name, event.id):
                    await self.handler(session, event)
                    outcome = "applied"
                else:
                    outcome = "duplicate"
        except Exception as exc:
            await self._failed(msg, event, exc)
            return
        await msg.ack()
        MESSAGES_HANDLED.labels(self.name, outcome).inc()

    async def handle_together(self, msgs: list[Msg]) -> None:
        """Several messages, claimed and applied in one transaction, in order."""
        try:
            events = [Event.decode(msg.data) for msg in msgs]
            async with self.db.unit_of_work() as session:
                fresh = await claim_messages(session, self.name, [event.id for event in events])
                applied = len(fresh)
                for event in events:
                    if event.id in fresh:
                        fresh.discard(event.id)  # a message twice in one fetch is applied once
                        await self.handler(session, event)
        except Exception:
            # one failing message must not fail (or hold back) the others: each on its own now
            for msg in msgs:
                await self.handle(msg)
            return
        for msg in msgs:
            await msg.ack()
        MESSAGES_HANDLED.labels(self.name, "applied").inc(applied)
        MESSAGES_HANDLED.labels(self.name, "duplicate").inc(len(msgs) - applied)

    async def _failed(self, msg: Msg, event: Event, exc: Exception) -> None:
        attempt = msg.metadata.num_delivered
        log.warning("message failed", consumer=self.name, event_type=event.type, id=str(event.id),
                    attempt=attempt, error=repr(exc))
        if attempt >= self.settings.consumer_max_deliver:
            await self.js.publish(
                f"deadletter.{self.name}", msg.data,
                headers={"Nats-Msg-Id": f"{self.name}:{event.id}", "Openpay-Error": repr(exc)[:500]},
            )
            await msg.term()
            MESSAGES_HANDLED.labels(self.name, "deadlettered").inc()
        else:
            await msg.nak(delay=min(2.0 ** attempt, 60.0))
            MESSAGES_HANDLED.labels(self.name, "retried").inc()

    async def _next(self, subscription: JetStreamContext.PullSubscription) -> list[Msg]:
        """Waits (up to a second) for the next message, then takes what else is already waiting."""
        try:
            messages = await subscription.fetch(1, timeout=1)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        # the server says how many more are waiting: none (the usual case when keeping up) costs no
        # second pull; some are pulled at once, up to the batch
        waiting = min(self.batch - 1, messages[0].metadata.num_pending or 0)
        if waiting > 0:
            with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
                messages += await subscription.fetch(waiting, timeout=DRAIN_WAIT_S)
        return messages

    async def run(self, stop: asyncio.Event) -> None:
        subscription = await self._subscribe()
        try:
            while not stop.is_set():
                messages = await self._next(subscription)
                if self.shared_transaction and len(messages) > 1:
                    await self.handle_together(messages)
                    continue
                for msg in messages:
                    await self.handle(msg)
        finally:
            await subscription.unsubscribe()


__all__ = [
    "Consumer", "Event", "OutboxMessage", "OutboxRelay", "ProcessedMessage", "announce",
    "claim_message", "claim_messages", "connect_nats", "ensure_streams",
]
