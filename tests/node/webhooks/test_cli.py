"""`openpay replay-webhooks` schedules a merchant's undelivered webhooks again."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from node.config import Settings
from node.resources import Resources
from node.webhooks.models import Delivery
from tests.node.webhooks.conftest import add_endpoint, deliveries, emit


async def test_replay_webhooks_reopens_exhausted_deliveries(
    resources: Resources, settings: Settings, merchant: uuid.UUID,
) -> None:
    await add_endpoint(resources, settings, merchant, "http://127.0.0.1:9/h")
    await emit(resources, merchant, "payment.expired", {"id": "p"}, key="p")
    async with resources.db.unit_of_work() as session:
        await session.execute(update(Delivery).where(Delivery.merchant_id == merchant).values(status="EXHAUSTED"))
    now = datetime.now(UTC)
    env = {**os.environ, "DATABASE_URL": settings.database_url or ""}
    done = subprocess.run(
        [sys.executable, "-m", "node.cli", "replay-webhooks", "--merchant", str(merchant),
         "--from", (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"),
         "--to", (now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "1 deliveries scheduled again" in done.stderr
    assert [d.status for d in await deliveries(resources, merchant)] == ["PENDING"]
