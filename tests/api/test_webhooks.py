"""The portal's webhook routes: endpoints, keys, the delivery log, retry and replay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from node.resources import Resources
from node.webhooks.dispatcher import DeliveryDispatcher
from tests.fixtures.accounts import make_merchant
from tests.fixtures.webhooks import WebhookReceiver
from tests.node.webhooks.conftest import emit, eventually


class TestEndpoints:
    async def test_register_list_change_remove(
        self, client: httpx.AsyncClient, resources: Resources, webhook_receiver: WebhookReceiver,
    ) -> None:
        account = await make_merchant(resources)
        headers = account.auth_headers
        created = await client.post("/v1/webhooks/endpoints", headers=headers, json={
            "url": webhook_receiver.url(), "events": ["payment.*", "withdrawal.completed"], "mode": "test",
            "description": "shop"})
        assert created.status_code == 201, created.text
        endpoint = created.json()["data"]
        assert endpoint["events"] == ["payment.*", "withdrawal.completed"] and endpoint["enabled"] is True
        listed = (await client.get("/v1/webhooks/endpoints", headers=headers)).json()["data"]
        assert [e["id"] for e in listed] == [endpoint["id"]]
        changed = await client.patch(f"/v1/webhooks/endpoints/{endpoint['id']}", headers=headers,
                                     json={"events": ["*"], "description": "all"})
        assert changed.json()["data"]["events"] == ["*"]
        keys = (await client.get("/v1/webhooks/public-key", headers=headers)).json()["data"]
        assert keys["publicKey"] and len(keys["keys"]) == 1
        removed = await client.delete(f"/v1/webhooks/endpoints/{endpoint['id']}", headers=headers)
        assert removed.status_code == 200
        assert (await client.get("/v1/webhooks/endpoints", headers=headers)).json()["data"] == []

    async def test_testing_a_disabled_endpoint_is_a_409_not_a_500(
        self, client: httpx.AsyncClient, resources: Resources, webhook_receiver: WebhookReceiver,
    ) -> None:
        account = await make_merchant(resources)
        headers = account.auth_headers
        endpoint = (await client.post("/v1/webhooks/endpoints", headers=headers, json={
            "url": webhook_receiver.url(), "events": ["payment.*"], "mode": "test"})).json()["data"]
        await client.patch(f"/v1/webhooks/endpoints/{endpoint['id']}", headers=headers, json={"enabled": False})
        reply = await client.post(f"/v1/webhooks/endpoints/{endpoint['id']}/test", headers=headers)
        assert reply.status_code == 409
        assert reply.json()["error"]["code"] == "ENDPOINT_DISABLED"
        assert webhook_receiver.received == []

    async def test_bad_input_is_a_clear_400_that_changes_nothing(
        self, client: httpx.AsyncClient, resources: Resources,
    ) -> None:
        account = await make_merchant(resources)
        for body in ({"url": "https://10.0.0.7/hook"}, {"url": "http://127.0.0.1:9/h", "mode": "live"},
                     {"url": "https://[::1]/"}, {"url": "https://93.184.216.34/", "events": ["nope.*"]},
                     {"url": "https://93.184.216.34/", "events": []}, {"events": ["*"]}):
            answer = await client.post("/v1/webhooks/endpoints", headers=account.auth_headers, json=body)
            assert answer.status_code == 400, (body, answer.text)
            assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
        assert (await client.get("/v1/webhooks/endpoints", headers=account.auth_headers)).json()["data"] == []

    async def test_another_merchants_endpoint_is_not_found(
        self, client: httpx.AsyncClient, resources: Resources, webhook_receiver: WebhookReceiver,
    ) -> None:
        owner, other = await make_merchant(resources), await make_merchant(resources)
        endpoint = (await client.post("/v1/webhooks/endpoints", headers=owner.auth_headers, json={
            "url": webhook_receiver.url(), "mode": "test"})).json()["data"]
        for method in ("GET", "PATCH", "DELETE"):
            answer = await client.request(method, f"/v1/webhooks/endpoints/{endpoint['id']}",
                                          headers=other.auth_headers, json={} if method == "PATCH" else None)
            assert answer.status_code == 404, method

    async def test_rotation_keeps_the_old_key_listed_for_the_grace_period(
        self, client: httpx.AsyncClient, resources: Resources, webhook_receiver: WebhookReceiver,
    ) -> None:
        account = await make_merchant(resources)
        await client.post("/v1/webhooks/endpoints", headers=account.auth_headers,
                          json={"url": webhook_receiver.url(), "mode": "test"})
        old = (await client.get("/v1/webhooks/public-key", headers=account.auth_headers)).json()["data"]["publicKey"]
        new = (await client.post("/v1/webhooks/keys/rotate", headers=account.auth_headers)).json()["data"]["publicKey"]
        keys = (await client.get("/v1/webhooks/public-key", headers=account.auth_headers)).json()["data"]
        assert keys["publicKey"] == new != old
        assert [(k["publicKey"], k["active"], k["validUntil"] is not None) for k in keys["keys"]] == [
            (new, True, False), (old, False, True)]


class TestDeliveryLog:
    async def test_list_inspect_retry_and_replay(
        self, client: httpx.AsyncClient, resources: Resources, webhook_receiver: WebhookReceiver,
        webhook_dispatcher: DeliveryDispatcher,
    ) -> None:
        account = await make_merchant(resources)
        headers = account.auth_headers
        await client.post("/v1/webhooks/endpoints", headers=headers,
                          json={"url": webhook_receiver.url(), "mode": "test"})
        webhook_receiver.status = 410
        await emit(resources, account.merchant_id, "payment.paid", {"id": "p1"}, key="p1")

        async def exhausted() -> bool:
            rows = (await client.get("/v1/webhooks/deliveries?status=EXHAUSTED", headers=headers)).json()["data"]
            return len(rows) == 1
        await eventually(exhausted)
        page = (await client.get("/v1/webhooks/deliveries", headers=headers)).json()
        assert page["meta"] == {"total": 1, "page": 1, "perPage": 20}
        delivery = page["data"][0]
        detail = (await client.get(f"/v1/webhooks/deliveries/{delivery['id']}", headers=headers)).json()["data"]
        assert detail["payload"] == {"id": "p1", "merchantId": str(account.merchant_id), "event": "payment.paid"}
        assert [a["statusCode"] for a in detail["attemptLog"]] == [410] * 5

        webhook_receiver.status = 200
        retried = await client.post(f"/v1/webhooks/deliveries/{delivery['id']}/retry", headers=headers)
        assert retried.json()["data"]["status"] == "PENDING"

        async def delivered() -> bool:
            one = (await client.get(f"/v1/webhooks/deliveries/{delivery['id']}", headers=headers)).json()["data"]
            return bool(one["status"] == "DELIVERED")
        await eventually(delivered)

        now = datetime.now(UTC)
        window = {"from": (now - timedelta(minutes=5)).isoformat(), "to": (now + timedelta(minutes=1)).isoformat()}
        none_left = await client.post("/v1/webhooks/deliveries/replay", headers=headers, json=window)
        assert none_left.json() == {"data": {"replayed": 0}}
        again = await client.post("/v1/webhooks/deliveries/replay", headers=headers,
                                  json={**window, "includeDelivered": True})
        assert again.json() == {"data": {"replayed": 1}}

        async def twice() -> bool:
            return len([w for w in webhook_receiver.received if w.headers["x-webhook-attempt"] == "1"]) == 2
        await eventually(twice)
        assert {w.id for w in webhook_receiver.received} == {delivery["id"]}

    async def test_a_replay_window_backwards_is_refused(self, client: httpx.AsyncClient, resources: Resources) -> None:
        account = await make_merchant(resources)
        answer = await client.post("/v1/webhooks/deliveries/replay", headers=account.auth_headers, json={
            "from": "2026-11-24T10:00:00Z", "to": "2026-11-24T09:00:00Z"})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "VALIDATION_ERROR"

    async def test_unknown_or_foreign_deliveries_are_not_found(
        self, client: httpx.AsyncClient, resources: Resources,
    ) -> None:
        account = await make_merchant(resources)
        answer = await client.get(f"/v1/webhooks/deliveries/{uuid.uuid4()}", headers=account.auth_headers)
        assert answer.status_code == 404
        bad = await client.get("/v1/webhooks/deliveries/not-a-uuid", headers=account.auth_headers)
        assert bad.status_code == 400
