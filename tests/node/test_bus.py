"""The outbox and the bus: nothing lost, nothing applied twice, failures dead-lettered."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.bus import Consumer, Event, OutboxMessage, OutboxRelay, announce
from node.config import Settings
from node.resources import Resources
from tests.fixtures.infra import role_env

MESSAGES = 10_000
WRITERS = 8


@pytest_asyncio.fixture
async def crash_tables(resources: Resources) -> AsyncIterator[None]:
    async with resources.db.unit_of_work() as session:
        await session.execute(text(
            "CREATE TABLE IF NOT EXISTS public.crash_state (id bigserial PRIMARY KEY, run text)"))
        await session.execute(text(
            "CREATE TABLE IF NOT EXISTS public.crash_effects (message_id uuid, state_id bigint)"))
    yield


async def _commit_state_changes(resources: Resources, run: str, event_type: str) -> None:
    """Concurrent writers, each committing a state row and its announcement together."""

    async def writer(count: int) -> None:
        for _ in range(count):
            async with resources.db.unit_of_work() as session:
                state_id = (await session.execute(
                    text("INSERT INTO public.crash_state (run) VALUES (:r) RETURNING id"), {"r": run}
                )).scalar_one()
                await announce(session, event_type, {"state_id": state_id}, key=str(state_id))

    await asyncio.gather(*(writer(MESSAGES // WRITERS) for _ in range(WRITERS)))


def _spawn(argv: list[str], settings: Settings) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *argv], env=role_env(settings), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def _kill_repeatedly(spawn: callable, until: asyncio.Event, kills: list[int]) -> subprocess.Popen[bytes]:  # type: ignore[valid-type]
    rng = random.Random(7)
    process = spawn()
    while not until.is_set():
        await asyncio.sleep(rng.uniform(0.2, 0.8))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills.append(1)
        process = spawn()
    return process


async def _wait_for(predicate: callable, timeout: float) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.25)


@pytest.mark.slow
class TestCrashes:
    @pytest.mark.parametrize("victim", ["relay", "consumer"])
    async def test_sigkill_loses_and_duplicates_nothing(
        self, resources: Resources, settings: Settings, crash_tables: None, victim: str,
    ) -> None:
        run = uuid.uuid4().hex[:8]
        event_type = f"crashtest.{run}"
        consumer_argv = ["-m", "tests.node.crash_consumer", f"crash-{run}", event_type]
        relay_argv = ["-m", "node.cli", "run", "relay"]
        steady_argv, victim_argv = (consumer_argv, relay_argv) if victim == "relay" else (relay_argv, consumer_argv)

        steady = _spawn(steady_argv, settings)
        done_writing = asyncio.Event()
        kills: list[int] = []
        killer = asyncio.ensure_future(
            _kill_repeatedly(lambda: _spawn(victim_argv, settings), done_writing, kills)
        )
        try:
            await _commit_state_changes(resources, run, event_type)
            done_writing.set()
            await killer

            async def all_applied() -> bool:
                async with resources.db.unit_of_work() as session:
                    applied = (await session.execute(text(
                        "SELECT count(*) FROM public.crash_effects e JOIN public.crash_state s "
                        "ON s.id = e.state_id WHERE s.run = :r"), {"r": run})).scalar_one()
                return bool(applied >= MESSAGES)

            await _wait_for(all_applied, timeout=120)
            await asyncio.sleep(1.5)  # room for a late duplicate to show up
        finally:
            done_writing.set()
            for process in (steady, *([killer.result()] if killer.done() and not killer.exception() else [])):
                process.send_signal(signal.SIGTERM)
                process.wait(10)

        async with resources.db.unit_of_work() as session:
            rows = (await session.execute(text(
                "SELECT count(*), count(DISTINCT e.state_id), count(DISTINCT e.message_id) "
                "FROM public.crash_effects e JOIN public.crash_state s ON s.id = e.state_id WHERE s.run = :r"
            ), {"r": run})).one()
            unpublished = (await session.execute(
                select(func.count()).select_from(OutboxMessage)
                .where(OutboxMessage.type == event_type, OutboxMessage.published_at.is_(None))
            )).scalar_one()
        assert len(kills) >= 3, "the victim was not killed often enough to test anything"
        assert tuple(rows) == (MESSAGES, MESSAGES, MESSAGES), "a message was lost or applied twice"
        assert unpublished == 0


class TestRelayAndConsumer:
    async def test_announced_message_reaches_consumer_once(self, resources: Resources) -> None:
        run = uuid.uuid4().hex[:8]
        seen: list[Event] = []

        async def handler(session: object, event: Event) -> None:
            seen.append(event)

        async with resources.db.unit_of_work() as session:
            message_id = await announce(session, f"unit.{run}", {"amount": "100"}, key="pay-1")
        relay = OutboxRelay(resources.db, resources.js, resources.settings)
        assert await relay.relay_once() >= 1

        # the row is published again, as after a relay crash before its commit: the stream drops it
        async with resources.db.unit_of_work() as session:
            await session.execute(update(OutboxMessage).where(OutboxMessage.message_id == message_id)
                                  .values(published_at=None))
        await relay.relay_once()

        consumer = Consumer(resources.db, resources.js, resources.settings, name=f"unit-{run}",
                            event_types=[f"unit.{run}"], handler=handler)
        # long enough for a second copy to arrive, had the stream not dropped it
        await _run_briefly(consumer, lambda: False, seconds=1.5)
        assert [(e.id, e.type, e.key, e.data) for e in seen] == [
            (message_id, f"unit.{run}", "pay-1", {"amount": "100"})
        ]

    async def test_a_redelivered_message_is_not_applied_again(self, resources: Resources) -> None:
        run = uuid.uuid4().hex[:8]
        applied: list[uuid.UUID] = []

        async def handler(session: object, event: Event) -> None:
            applied.append(event.id)

        async with resources.db.unit_of_work() as session:
            message_id = await announce(session, f"dup.{run}", {"n": 1})
        event = Event(message_id, f"dup.{run}", None, datetime.now(UTC), {"n": 1})
        # the same message published twice outside the dedup window's reach (another msg id)
        for copy in range(2):
            await resources.js.publish(f"events.dup.{run}", event.encode(),
                                       headers={"Nats-Msg-Id": f"{message_id}-{copy}"})
        consumer = Consumer(resources.db, resources.js, resources.settings, name=f"dup-{run}",
                            event_types=[f"dup.{run}"], handler=handler)
        await _run_briefly(consumer, lambda: False, seconds=1.5)
        assert applied == [message_id]

    async def test_a_message_that_keeps_failing_is_dead_lettered(self, resources: Resources) -> None:
        run = uuid.uuid4().hex[:8]
        attempts: list[int] = []
        settings = resources.settings.model_copy(update={"consumer_max_deliver": 2})

        async def handler(session: object, event: Event) -> None:
            attempts.append(1)
            raise ValueError("receiver rejects it")

        async with resources.db.unit_of_work() as session:
            await announce(session, f"poison.{run}", {"n": 1})
        await OutboxRelay(resources.db, resources.js, settings).relay_once()
        dead = await resources.js.pull_subscribe(f"deadletter.poison-{run}", durable=f"dlq-{run}",
                                                 stream=settings.deadletter_stream)
        consumer = Consumer(resources.db, resources.js, settings, name=f"poison-{run}",
                            event_types=[f"poison.{run}"], handler=handler)
        await _run_briefly(consumer, lambda: len(attempts) >= 2, seconds=10)
        messages = await dead.fetch(1, timeout=5)
        assert len(attempts) == 2
        assert Event.decode(messages[0].data).type == f"poison.{run}"
        assert "receiver rejects it" in messages[0].headers["Openpay-Error"]


class TestBatches:
    async def test_a_message_on_a_quiet_stream_is_handled_at_once_not_held_for_a_batch(
        self, resources: Resources,
    ) -> None:
        run = uuid.uuid4().hex[:8]
        handled: list[float] = []

        async def handler(session: object, event: Event) -> None:
            handled.append(time.monotonic())

        consumer = Consumer(resources.db, resources.js, resources.settings, name=f"quiet-{run}",
                            event_types=[f"quiet.{run}"], handler=handler, batch=100, shared_transaction=True)
        stop = asyncio.Event()
        task = asyncio.ensure_future(consumer.run(stop))
        try:
            await asyncio.sleep(0.3)  # the consumer waits on an empty stream
            relay = OutboxRelay(resources.db, resources.js, resources.settings)
            for n in range(3):
                async with resources.db.unit_of_work() as session:
                    await announce(session, f"quiet.{run}", {"n": n})
                await relay.relay_once()
                sent = time.monotonic()
                while len(handled) <= n and time.monotonic() - sent < 5:
                    await asyncio.sleep(0.005)
                assert len(handled) == n + 1 and handled[n] - sent < 0.25
        finally:
            stop.set()
            await task

    async def test_a_failing_message_in_a_shared_transaction_holds_back_none_of_the_others(
        self, resources: Resources, crash_tables: None,
    ) -> None:
        run = uuid.uuid4().hex[:8]
        settings = resources.settings.model_copy(update={"consumer_max_deliver": 2})
        attempts: list[int] = []

        async def handler(session: AsyncSession, event: Event) -> None:
            await session.execute(text("INSERT INTO public.crash_effects (message_id, state_id) VALUES (:m, :s)"),
                                  {"m": event.id, "s": event.data["n"]})
            if event.data["n"] == 3:
                attempts.append(1)
                raise ValueError("bad one")

        ids = []
        for n in range(8):  # all waiting before the consumer starts: one fetch takes them together
            async with resources.db.unit_of_work() as session:
                ids.append(await announce(session, f"mixed.{run}", {"n": n}))
        await OutboxRelay(resources.db, resources.js, settings).relay_once()
        consumer = Consumer(resources.db, resources.js, settings, name=f"mixed-{run}",
                            event_types=[f"mixed.{run}"], handler=handler, shared_transaction=True)
        await _run_briefly(consumer, lambda: len(attempts) >= 3, seconds=10)
        async with resources.db.unit_of_work() as session:
            applied = (await session.execute(text(
                "SELECT state_id FROM public.crash_effects WHERE message_id = ANY(:ids) ORDER BY state_id"),
                {"ids": ids})).scalars().all()
        # each applied once; the bad one tried in the batch (rolled back), then alone until dead-lettered
        assert applied == [0, 1, 2, 4, 5, 6, 7] and len(attempts) == 3


async def _run_briefly(consumer: Consumer, done: callable, seconds: float = 10) -> None:  # type: ignore[valid-type]
    stop = asyncio.Event()
    task = asyncio.ensure_future(consumer.run(stop))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not done():
        await asyncio.sleep(0.05)
    stop.set()
    await task
