"""The real worker role, SIGKILLed mid-delivery again and again: every event is delivered
(or dead-lettered), none is lost, the log has one success per delivery, and a receiver
only ever sees repeats of the same webhook id.

Order per payment is not asserted here: a bus message the killed worker had fetched
comes back only after the consumer's ack wait, so its webhook can follow a later one of
the same payment (see node/webhooks/__init__.py)."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import func, select

from node.bus import announce
from node.config import Settings
from node.resources import Resources
from node.webhooks.models import Delivery, DeliveryAttempt
from tests.fixtures.infra import role_env
from tests.fixtures.webhooks import WebhookReceiver
from tests.node.webhooks.conftest import add_endpoint, deliveries, eventually

PAYMENTS = 40
STEPS = ["payment.initiated", "payment.pending", "payment.paid", "payment.refunded"]
KILLS = 10


def _worker_env(settings: Settings) -> dict[str, str]:
    return role_env(
        settings, OPENPAY_LOG_LEVEL="WARNING",
        OPENPAY_WEBHOOK_RETRY_SCHEDULE_S="[0.2, 0.4, 0.8, 1.6]", OPENPAY_WEBHOOK_TIMEOUT_S="1",
        OPENPAY_WEBHOOK_LEASE_S="2", OPENPAY_WEBHOOK_POLL_INTERVAL_S="0.2",
        OPENPAY_SMTP_PORT="9",  # the worker's mail sender is not under test here
    )


def _spawn(settings: Settings) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "node.cli", "run", "worker"], env=_worker_env(settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
class TestWorkerCrashes:
    async def test_sigkilled_worker_loses_nothing(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
    ) -> None:
        webhook_receiver.delay = 0.05  # so kills land while requests are in flight
        await add_endpoint(resources, fast, merchant, webhook_receiver.url())
        order: dict[str, list[str]] = {}

        async def announce_all() -> None:
            for step in STEPS:
                for n in range(PAYMENTS):
                    payment = f"{merchant.hex[:8]}-{n}"
                    async with resources.db.unit_of_work() as session:
                        await announce(session, step, {"id": payment, "merchantId": str(merchant), "step": step},
                                       key=payment)
                    order.setdefault(payment, []).append(step)
                    # keep events coming while the kills go on, however slowly workers start
                    await asyncio.sleep(0.25 if kills < KILLS else 0.01)

        rng = random.Random(8)
        kills = 0
        writer = asyncio.ensure_future(announce_all())
        worker = _spawn(fast)
        busy_kills = 0  # kills of a worker that had been delivering
        try:
            while kills < KILLS:
                seen = len(webhook_receiver.received)
                # kill once this worker is delivering (start-up takes a second or more), at a random moment
                deadline = time.monotonic() + 30
                while len(webhook_receiver.received) <= seen and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(rng.uniform(0, 0.3))
                busy_kills += len(webhook_receiver.received) > seen
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                kills += 1
                worker = _spawn(fast)
            await writer
            async def settled() -> bool:
                rows = await deliveries(resources, merchant)
                return len(rows) == PAYMENTS * len(STEPS) and all(
                    r.status in ("DELIVERED", "EXHAUSTED") for r in rows)
            await eventually(settled, timeout=60)
        finally:
            writer.cancel()
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()

        rows = await deliveries(resources, merchant)
        assert len({r.event_id for r in rows}) == PAYMENTS * len(STEPS), "an event was lost or duplicated"
        delivered = {str(r.id) for r in rows if r.status == "DELIVERED"}
        received = webhook_receiver.by_id()
        assert delivered <= set(received), "a delivery marked DELIVERED never reached the receiver"
        assert set(received) <= {str(r.id) for r in rows}, "the receiver saw an id that is not a delivery"
        for copies in received.values():  # repeats are byte-identical bodies under one id
            assert len({c.body for c in copies}) == 1
        async with resources.db.unit_of_work() as session:
            successes = dict((await session.execute(
                select(DeliveryAttempt.delivery_id, func.count())
                .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
                .where(Delivery.merchant_id == merchant, DeliveryAttempt.success.is_(True))
                .group_by(DeliveryAttempt.delivery_id)
            )).all())
        assert {str(k) for k in successes} == delivered and set(successes.values()) == {1}

        exhausted = [r for r in rows if r.status == "EXHAUSTED"]
        assert len(exhausted) <= len(rows) // 20, f"{len(exhausted)} deliveries ran out of attempts"
        assert busy_kills >= KILLS // 2, "the worker was not killed while delivering often enough"
