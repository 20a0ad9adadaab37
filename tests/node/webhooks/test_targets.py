"""SSRF: live endpoints reach only public https targets, checked at registration and at send time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from node.config import Environment, Settings
from node.errors import ValidationFailed
from node.resources import Resources
from node.webhooks.dispatcher import DeliveryDispatcher
from node.webhooks.models import Endpoint
from node.webhooks.targets import TargetRefused, check_url
from tests.fixtures.webhooks import WebhookReceiver
from tests.node.webhooks.conftest import add_endpoint, attempts, deliveries, emit, eventually

REFUSED_LIVE = [
    "https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://169.254.169.254/latest/meta-data",
    "https://[::1]/hook", "https://localhost/hook", "https://192.168.1.10/", "https://172.16.0.1/",
    "https://[::ffff:127.0.0.1]/", "https://0.0.0.0/", "https://100.64.0.1/", "https://[fe80::1]/",
    "http://93.184.216.34/hook", "ftp://example.com/", "https://user:pw@93.184.216.34/",
]


class TestRegistration:
    @pytest.mark.parametrize("url", REFUSED_LIVE)
    async def test_live_mode_refuses_internal_or_plain_targets(self, settings: Settings, url: str) -> None:
        with pytest.raises(TargetRefused):
            await check_url(url, "live", settings)

    async def test_live_mode_accepts_a_public_https_address(self, settings: Settings) -> None:
        await check_url("https://93.184.216.34/hook", "live", settings)

    @pytest.mark.parametrize("url", ["http://127.0.0.1:9/h", "http://[::1]:9/h", "http://localhost:9/h",
                                     "https://127.0.0.1/h"])
    async def test_test_mode_accepts_loopback(self, settings: Settings, url: str) -> None:
        await check_url(url, "test", settings)

    @pytest.mark.parametrize("url", ["http://10.0.0.1/h", "http://169.254.169.254/", "http://93.184.216.34/",
                                     "https://192.168.0.1/"])
    async def test_test_mode_refuses_everything_else_internal_or_plain(self, settings: Settings, url: str) -> None:
        with pytest.raises(TargetRefused):
            await check_url(url, "test", settings)

    async def test_production_refuses_loopback_even_in_test_mode(self, settings: Settings) -> None:
        production = settings.model_copy(update={"environment": Environment.production})
        with pytest.raises(TargetRefused):
            await check_url("http://127.0.0.1:9/h", "test", production)

    async def test_the_api_error_is_a_validation_error(
        self, resources: Resources, settings: Settings, merchant: uuid.UUID,
    ) -> None:
        with pytest.raises(ValidationFailed, match="invalid webhook configuration"):
            await add_endpoint(resources, settings, merchant, "https://169.254.169.254/", mode="live")


class TestSendTime:
    async def test_a_live_endpoint_that_now_resolves_to_loopback_is_not_contacted(
        self, resources: Resources, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        # registered while "localhost" was public (as after DNS rebinding): written directly
        async with resources.db.unit_of_work() as session:
            session.add(Endpoint(
                id=uuid.uuid4(), merchant_id=merchant, url=webhook_receiver.url("localhost").replace("http:", "https:"),
                events=["*"], mode="live", enabled=True, description="", is_sdk=False,
                created_at=datetime.now(UTC), updated_at=datetime.now(UTC),
            ))
        await emit(resources, merchant, "payment.paid", {"id": "p"})

        async def refused() -> bool:
            rows = await deliveries(resources, merchant)
            return bool(rows) and bool(rows[0].last_error)
        await eventually(refused)
        [row] = await deliveries(resources, merchant)
        [attempt, *_] = await attempts(resources, row.id)
        assert attempt.error is not None and "refused" in attempt.error and "loopback" in attempt.error
        assert webhook_receiver.received == []

    async def test_a_test_endpoint_over_http_reaches_loopback(
        self, resources: Resources, settings: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        await add_endpoint(resources, settings, merchant, webhook_receiver.url("localhost"), mode="test")
        await emit(resources, merchant, "payment.paid", {"id": "p"})

        async def received() -> bool:
            return len(webhook_receiver.received) == 1
        await eventually(received)
