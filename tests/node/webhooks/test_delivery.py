"""Deliveries against a real receiver: exact bodies, both signatures, retries, order, replay."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import orjson

from node.config import Settings
from node.resources import Resources
from node.webhooks import service
from node.webhooks.dispatcher import DeliveryDispatcher
from node.webhooks.schemas import EndpointPatch, ReplayIn
from tests.fixtures.webhooks import WebhookReceiver
from tests.node.webhooks.conftest import (
    add_endpoint,
    attempts,
    deliveries,
    emit,
    eventually,
    public_key,
    statuses,
)
from tests.node.webhooks.verify import verify_original, verify_standard

PAYMENT = {
    "id": "6f1c1f39-3d0e-4d52-9a55-0d2f7d1b9c11", "paymentNo": "PAY-20261124-0a1b2c3d",
    "merchantTradeNo": "order-1", "amount": "100", "currency": "USDT", "status": "PAID",
    "txHash": "0xabc", "paidAt": "2026-11-24T10:00:00Z",
}


class TestDelivery:
    async def test_payment_event_arrives_signed_with_the_payment_at_top_level(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        await add_endpoint(resources, fast, merchant, webhook_receiver.url())
        await emit(resources, merchant, "payment.paid", PAYMENT, key=PAYMENT["id"])

        async def received() -> bool:
            return len(webhook_receiver.received) == 1
        await eventually(received)

        webhook = webhook_receiver.received[0]
        body = orjson.loads(webhook.body)
        assert body == {**PAYMENT, "merchantId": str(merchant), "event": "payment.paid"}
        assert webhook.body == orjson.dumps(body)  # compact
        key = await public_key(resources, merchant)
        assert verify_original(key, webhook.headers, webhook.body)
        assert verify_standard(key, webhook.headers, webhook.body)
        assert webhook.headers["x-webhook-event"] == "payment.paid"
        assert webhook.headers["x-webhook-attempt"] == "1"
        assert webhook.headers["user-agent"] == "OpenLankaPayment-Webhook/1.0"
        assert webhook.headers["content-type"] == "application/json"
        assert "x-signature" not in webhook.headers
        [row] = await deliveries(resources, merchant)
        assert row.id == uuid.UUID(webhook.headers["x-webhook-id"]) == uuid.UUID(webhook.id)

        async def delivered() -> bool:
            return statuses(await deliveries(resources, merchant)) == ["DELIVERED"]
        await eventually(delivered)
        [attempt] = await attempts(resources, row.id)
        assert attempt.success and attempt.status_code == 200 and attempt.response_excerpt == '{"received":true}'

    async def test_other_events_carry_data_and_event(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        await add_endpoint(resources, fast, merchant, webhook_receiver.url(), events=["withdrawal.*"])
        await emit(resources, merchant, "payment.paid", PAYMENT)  # filtered out
        await emit(resources, merchant, "withdrawal.completed", {"id": "w1", "amount": "5"})

        async def received() -> bool:
            return len(webhook_receiver.received) == 1
        await eventually(received)
        assert orjson.loads(webhook_receiver.received[0].body) == {
            "data": {"merchantId": str(merchant), "id": "w1", "amount": "5"}, "event": "withdrawal.completed",
        }
        assert len(await deliveries(resources, merchant)) == 1

    async def test_an_event_with_a_mode_goes_to_endpoints_of_that_mode(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
    ) -> None:
        test_endpoint = await add_endpoint(resources, fast, merchant, webhook_receiver.url(), mode="test")
        await add_endpoint(resources, fast, merchant, "https://93.184.216.34/hook", mode="live")
        await emit(resources, merchant, "payment.paid", {**PAYMENT, "mode": "test"})
        await emit(resources, merchant, "payment.expired", PAYMENT)  # no mode: every endpoint
        rows = await deliveries(resources, merchant)
        assert sorted((r.event_type, r.endpoint_id == test_endpoint.id) for r in rows) == [
            ("payment.expired", False), ("payment.expired", True), ("payment.paid", True)]

    async def test_a_redelivered_bus_message_makes_no_second_delivery(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
    ) -> None:
        await add_endpoint(resources, fast, merchant, webhook_receiver.url())
        await add_endpoint(resources, fast, merchant, webhook_receiver.url(), events=["*"])
        event = await emit(resources, merchant, "payment.paid", PAYMENT)
        async with resources.db.unit_of_work() as session:
            assert await service.deliveries_for_event(session, event) == 0
        assert len(await deliveries(resources, merchant)) == 2  # one per endpoint

    async def test_a_failing_receiver_is_retried_with_the_same_id_and_new_signatures(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        webhook_receiver.status = 500
        await add_endpoint(resources, fast, merchant, webhook_receiver.url())
        await emit(resources, merchant, "payment.paid", PAYMENT, key=PAYMENT["id"])

        async def three_tries() -> bool:
            return len(webhook_receiver.received) >= 3
        await eventually(three_tries)
        webhook_receiver.status = 204

        async def delivered() -> bool:
            return statuses(await deliveries(resources, merchant)) == ["DELIVERED"]
        await eventually(delivered)
        seen = webhook_receiver.received
        assert len({w.id for w in seen}) == 1
        assert [w.headers["x-webhook-attempt"] for w in seen] == [str(n) for n in range(1, len(seen) + 1)]
        assert len({w.headers["x-webhook-signature"] for w in seen}) == len(seen)
        key = await public_key(resources, merchant)
        assert all(verify_original(key, w.headers, w.body) and verify_standard(key, w.headers, w.body) for w in seen)
        [row] = await deliveries(resources, merchant)
        log = await attempts(resources, row.id)
        assert [a.success for a in log] == [False] * (len(log) - 1) + [True]
        assert log[0].status_code == 500 and log[0].error == "HTTP 500"

    async def test_attempts_run_out_then_a_replay_delivers_the_same_webhook(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        webhook_receiver.status = 503
        await add_endpoint(resources, fast, merchant, webhook_receiver.url())
        await emit(resources, merchant, "payment.expired", PAYMENT)

        async def exhausted() -> bool:
            return statuses(await deliveries(resources, merchant)) == ["EXHAUSTED"]
        await eventually(exhausted)
        assert len(webhook_receiver.received) == len(fast.webhook_retry_schedule_s) + 1
        [row] = await deliveries(resources, merchant)

        webhook_receiver.status = 200
        async with resources.db.unit_of_work() as session:
            count = await service.replay(session, merchant, ReplayIn.model_validate(
                {"from": row.created_at.isoformat(), "to": row.created_at.isoformat()}))
        assert count == 1

        async def delivered() -> bool:
            return statuses(await deliveries(resources, merchant)) == ["DELIVERED"]
        await eventually(delivered)
        assert {w.id for w in webhook_receiver.received} == {str(row.id)}
        assert webhook_receiver.received[-1].headers["x-webhook-attempt"] == "1"

    async def test_redirects_are_not_followed(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        webhook_receiver.status = 302
        webhook_receiver.extra_headers = [(b"location", b"http://10.0.0.1/steal")]
        await add_endpoint(resources, fast, merchant, webhook_receiver.url())
        await emit(resources, merchant, "payment.paid", PAYMENT)

        async def failed() -> bool:
            rows = await deliveries(resources, merchant)
            return bool(rows) and rows[0].last_status_code == 302
        await eventually(failed)
        assert len(webhook_receiver.received) >= 1
        assert (await deliveries(resources, merchant))[0].status in ("FAILED", "DELIVERING", "EXHAUSTED")

    async def test_a_large_answer_is_read_only_up_to_the_cap(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        webhook_receiver.response_body = b"x" * (4 * 1024 * 1024)
        await add_endpoint(resources, fast, merchant, webhook_receiver.url())
        await emit(resources, merchant, "payment.paid", PAYMENT)

        async def delivered() -> bool:
            return statuses(await deliveries(resources, merchant)) == ["DELIVERED"]
        await eventually(delivered)
        [row] = await deliveries(resources, merchant)
        [attempt] = await attempts(resources, row.id)
        assert attempt.response_excerpt == "x" * fast.webhook_response_excerpt_chars

    async def test_a_receiver_slower_than_the_timeout_fails_the_attempt(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        webhook_receiver.delay = 1.5
        await add_endpoint(resources, fast, merchant, webhook_receiver.url())
        await emit(resources, merchant, "payment.paid", PAYMENT)

        async def timed_out() -> bool:
            rows = await deliveries(resources, merchant)
            return bool(rows) and bool(rows[0].last_error) and "timeout" in (rows[0].last_error or "")
        await eventually(timed_out)

    async def test_one_slow_endpoint_does_not_stall_another(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        slow = WebhookReceiver(delay=0.8)
        await slow.start()
        try:
            await add_endpoint(resources, fast, merchant, slow.url(), events=["payment.*"])
            await add_endpoint(resources, fast, merchant, webhook_receiver.url(), events=["payment.*"])
            for n in range(60):
                await emit(resources, merchant, "payment.paid", {**PAYMENT, "id": f"p{n}"}, key=f"p{n}")

            async def fast_one_done() -> bool:
                return len(webhook_receiver.by_id()) == 60
            await eventually(fast_one_done, timeout=3.0)
            # the slow endpoint works at its own bounded concurrency meanwhile
            assert len(slow.received) <= 2 * fast.webhook_endpoint_concurrency
        finally:
            await slow.stop()


class TestOrderAndOutages:
    async def test_receiver_down_then_up_gets_everything_in_order_per_payment_once(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        await webhook_receiver.stop()
        await add_endpoint(resources, fast, merchant, webhook_receiver.url())
        kinds = ["payment.initiated", "payment.pending", "payment.paid", "payment.refunded"]
        expected: dict[str, list[str]] = {}
        for step in kinds:  # interleaved across payments, in order within each
            for n in range(15):
                payment = f"pay-{n}"
                event = await emit(resources, merchant, step, {**PAYMENT, "id": payment, "step": step}, key=payment)
                expected.setdefault(payment, []).append(step)
                del event

        async def some_failed() -> bool:
            return any(r.status == "FAILED" for r in await deliveries(resources, merchant))
        await eventually(some_failed)
        await webhook_receiver.start()  # back up, same port

        async def all_delivered() -> bool:
            return set(statuses(await deliveries(resources, merchant))) == {"DELIVERED"}
        await eventually(all_delivered, timeout=20)

        first_seen: dict[str, list[str]] = {}
        for webhook in webhook_receiver.received:
            body = orjson.loads(webhook.body)
            steps = first_seen.setdefault(body["id"], [])
            if body["step"] not in steps:
                steps.append(body["step"])
        assert first_seen == expected
        rows = await deliveries(resources, merchant)
        assert len(rows) == 60
        for row in rows:
            assert sum(a.success for a in await attempts(resources, row.id)) == 1

    async def test_a_later_event_waits_for_the_earlier_one_of_the_same_payment(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        webhook_receiver.status = 500
        await add_endpoint(resources, fast, merchant, webhook_receiver.url())
        await emit(resources, merchant, "payment.pending", {**PAYMENT, "status": "USER_REVIEW"}, key="p")
        await emit(resources, merchant, "payment.paid", PAYMENT, key="p")
        await emit(resources, merchant, "payment.paid", {**PAYMENT, "id": "other"}, key="other")

        async def tried_twice() -> bool:
            return len(webhook_receiver.received) >= 4
        await eventually(tried_twice)
        events = [(orjson.loads(w.body)["id"], w.headers["x-webhook-event"]) for w in webhook_receiver.received]
        assert (PAYMENT["id"], "payment.paid") not in events  # held behind the failing payment.pending
        assert ("other", "payment.paid") in events  # another payment is not held


class TestDisabledEndpoints:
    async def test_a_disabled_endpoint_holds_its_deliveries_until_enabled(
        self, resources: Resources, fast: Settings, merchant: uuid.UUID, webhook_receiver: WebhookReceiver,
        dispatcher: DeliveryDispatcher,
    ) -> None:
        endpoint = await add_endpoint(resources, fast, merchant, webhook_receiver.url())
        async with resources.db.unit_of_work() as session:
            await service.update_endpoint(session, fast, merchant, endpoint.id, EndpointPatch(enabled=False))
        await emit(resources, merchant, "payment.paid", PAYMENT, key=PAYMENT["id"])
        assert await deliveries(resources, merchant) == []  # a disabled endpoint gets no new deliveries

        async with resources.db.unit_of_work() as session:
            await service.update_endpoint(session, fast, merchant, endpoint.id, EndpointPatch(enabled=True))
        await emit(resources, merchant, "payment.paid", PAYMENT, key=PAYMENT["id"])
        webhook_receiver.status = 500

        async def failed() -> bool:
            return statuses(await deliveries(resources, merchant)) == ["FAILED"]
        await eventually(failed)
        async with resources.db.unit_of_work() as session:
            await service.update_endpoint(session, fast, merchant, endpoint.id, EndpointPatch(enabled=False))
        [row] = await deliveries(resources, merchant)
        assert row.next_attempt_at.year > 9000 or row.next_attempt_at == datetime.max.replace(tzinfo=UTC)
        seen = len(webhook_receiver.received)
        webhook_receiver.status = 200
        await asyncio.sleep(0.5)
        assert len(webhook_receiver.received) == seen  # held

        async with resources.db.unit_of_work() as session:
            await service.update_endpoint(session, fast, merchant, endpoint.id, EndpointPatch(enabled=True))

        async def delivered() -> bool:
            return statuses(await deliveries(resources, merchant)) == ["DELIVERED"]
        await eventually(delivered)
