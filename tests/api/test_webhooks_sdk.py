"""The wire protocol's webhook routes (section 4), byte for byte, against a real receiver."""

from __future__ import annotations

import httpx
import orjson

from node.resources import Resources
from tests.fixtures.accounts import MerchantAccount, make_merchant
from tests.fixtures.webhooks import WebhookReceiver
from tests.node.webhooks.verify import verify_original, verify_standard

TEST_BODY = b'{"data":{"message":"This is a test webhook from OpenLankaPay"},"event":"test.webhook"}'


async def _post(client: httpx.AsyncClient, account: MerchantAccount, path: str, body: bytes = b"",
                mode: str = "test") -> httpx.Response:
    return await client.post(path, content=body, headers={
        **account.signed("POST", path, body, mode=mode), "content-type": "application/json"})  # type: ignore[arg-type]


async def _configure(client: httpx.AsyncClient, account: MerchantAccount, url: str,
                     mode: str = "test") -> httpx.Response:
    return await _post(client, account, "/v1/sdk/webhooks/configure", orjson.dumps({"url": url}), mode)


class TestConfigure:
    async def test_configure_answers_the_specs_shape_with_a_new_key_each_time(
        self, client: httpx.AsyncClient, resources: Resources, webhook_receiver: WebhookReceiver,
    ) -> None:
        account = await make_merchant(resources)
        first = await _configure(client, account, webhook_receiver.url())
        assert first.status_code == 201, first.text
        data = first.json()["data"]
        assert set(data) == {"id", "url", "publicKey", "events", "isActive", "createdAt"}
        assert data["url"] == webhook_receiver.url() and data["events"] == ["payment.*"] and data["isActive"] is True
        assert len(data["publicKey"]) == 44 and data["createdAt"].endswith("Z")
        second = (await _configure(client, account, webhook_receiver.url())).json()["data"]
        assert second["publicKey"] != data["publicKey"] and second["id"] == data["id"]

        path = "/v1/sdk/webhooks/public-key"
        answer = await client.get(path, headers=account.signed("GET", path))
        assert answer.status_code == 200 and answer.json() == {"data": {"publicKey": second["publicKey"]}}

    async def test_a_missing_url_or_plain_http_is_refused_with_the_specs_messages(
        self, client: httpx.AsyncClient, resources: Resources,
    ) -> None:
        account = await make_merchant(resources)
        missing = await _post(client, account, "/v1/sdk/webhooks/configure", b'{"events":["x"]}')
        assert missing.status_code == 400
        assert missing.json() == {"error": {"code": "VALIDATION_ERROR",
                                            "message": "invalid webhook configuration: URL is required"}}
        plain = await _configure(client, account, "http://shop.example/hook", mode="live")
        assert plain.json() == {"error": {"code": "VALIDATION_ERROR",
                                          "message": "invalid webhook configuration: URL must use HTTPS"}}
        internal = await _configure(client, account, "https://169.254.169.254/latest", mode="live")
        assert internal.status_code == 400 and internal.json()["error"]["code"] == "VALIDATION_ERROR"
        malformed = await _post(client, account, "/v1/sdk/webhooks/configure", b"{nope")
        assert malformed.json() == {"error": {"code": "INVALID_JSON", "message": "malformed request body"}}
        not_an_object = await _post(client, account, "/v1/sdk/webhooks/configure", b'["https://shop.example"]')
        assert not_an_object.json()["error"]["message"] == "invalid webhook configuration: URL is required"

    async def test_the_body_is_read_as_json_without_a_content_type(
        self, client: httpx.AsyncClient, resources: Resources, webhook_receiver: WebhookReceiver,
    ) -> None:
        account = await make_merchant(resources)
        path, body = "/v1/sdk/webhooks/configure", orjson.dumps({"url": webhook_receiver.url()})
        answer = await client.post(path, content=body, headers=account.signed("POST", path, body))
        assert answer.status_code == 201, answer.text
        assert answer.json()["data"]["url"] == webhook_receiver.url()

    async def test_without_configuration(self, client: httpx.AsyncClient, resources: Resources) -> None:
        account = await make_merchant(resources)
        path = "/v1/sdk/webhooks/public-key"
        answer = await client.get(path, headers=account.signed("GET", path))
        assert answer.status_code == 404
        assert answer.json() == {"error": {"code": "NOT_FOUND", "message": "webhook not configured"}}
        test = await _post(client, account, "/v1/sdk/webhooks/test")
        assert test.status_code == 404 and test.json()["error"]["code"] == "NOT_CONFIGURED"

    async def test_unsigned_calls_are_refused(self, client: httpx.AsyncClient) -> None:
        answer = await client.post("/v1/sdk/webhooks/configure", json={"url": "https://x.example"})
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "UNAUTHORIZED"


class TestTestWebhook:
    async def test_the_test_webhook_is_delivered_signed_and_exact(
        self, client: httpx.AsyncClient, resources: Resources, webhook_receiver: WebhookReceiver,
    ) -> None:
        account = await make_merchant(resources)
        public_key = (await _configure(client, account, webhook_receiver.url())).json()["data"]["publicKey"]
        answer = await _post(client, account, "/v1/sdk/webhooks/test", b'{"ignored":true}')
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert set(data) == {"success", "deliveryId", "status", "deliveryTime", "message"}
        assert (data["success"], data["status"], data["message"]) == (True, "DELIVERED", "Test webhook delivered")
        assert isinstance(data["deliveryTime"], int)
        [webhook] = webhook_receiver.received
        assert webhook.body == TEST_BODY
        assert webhook.headers["x-webhook-event"] == "test.webhook"
        assert webhook.headers["x-webhook-id"] == webhook.headers["webhook-id"] == data["deliveryId"]
        assert verify_original(public_key, webhook.headers, webhook.body)
        assert verify_standard(public_key, webhook.headers, webhook.body)
        assert "x-signature" not in webhook.headers

    async def test_a_failing_receiver_leaves_it_pending_for_retry(
        self, client: httpx.AsyncClient, resources: Resources, webhook_receiver: WebhookReceiver,
    ) -> None:
        account = await make_merchant(resources)
        webhook_receiver.status = 500
        await _configure(client, account, webhook_receiver.url())
        data = (await _post(client, account, "/v1/sdk/webhooks/test")).json()["data"]
        assert (data["success"], data["status"]) == (False, "PENDING")
        detail = await client.get(f"/v1/webhooks/deliveries/{data['deliveryId']}", headers=account.auth_headers)
        assert detail.json()["data"]["status"] == "FAILED"
        assert detail.json()["data"]["attemptLog"][0]["statusCode"] == 500

    async def test_an_inactive_webhook_fails_the_test(
        self, client: httpx.AsyncClient, resources: Resources, webhook_receiver: WebhookReceiver,
    ) -> None:
        account = await make_merchant(resources)
        endpoint_id = (await _configure(client, account, webhook_receiver.url())).json()["data"]["id"]
        off = await client.patch(f"/v1/webhooks/endpoints/{endpoint_id}", json={"enabled": False},
                                 headers=account.auth_headers)
        assert off.status_code == 200, off.text
        answer = await _post(client, account, "/v1/sdk/webhooks/test")
        assert answer.status_code == 500 and answer.json()["error"]["code"] == "DELIVERY_FAILED"
