"""HMAC API-key authentication as SDKs see it (sdk-wire-protocol.md section 1)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import pytest_asyncio
from fastapi import APIRouter, FastAPI, Request

from api.app import create_app
from api.deps import ApiKeyMerchant, CurrentMerchant
from node.infra.process import free_port
from node.redis_pipeline import PipelinedRedis
from node.resources import Resources
from tests.fixtures.accounts import MerchantAccount, hmac_headers, make_merchant, write_high_water

MISSING = "missing required auth headers (x-api-key, x-timestamp, x-signature)"
BAD_TS = "timestamp expired or invalid"
BAD_KEY = "invalid API key"
BAD_SIG = "invalid signature"


def _app(resources: Resources) -> FastAPI:
    app = create_app(resources.settings, resources)
    router = APIRouter()

    @router.api_route("/v1/sdk/echo", methods=["GET", "POST"])
    async def echo(principal: ApiKeyMerchant, request: Request) -> dict[str, object]:
        return {"merchantId": str(principal.merchant_id), "mode": principal.mode,
                "kycStatus": principal.kyc_status, "body": (await request.body()).decode()}

    @router.get("/v1/echo-any")
    async def echo_any(principal: CurrentMerchant) -> dict[str, object]:
        return {"merchantId": str(principal.merchant_id), "role": principal.role}

    app.include_router(router)
    return app


@pytest_asyncio.fixture(scope="module")
async def http(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(resources), client=("203.0.113.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        yield client


def _unauthorized(reply: httpx.Response, message: str) -> None:
    assert reply.status_code == 401, reply.text
    assert reply.json() == {"error": {"code": "UNAUTHORIZED", "message": message}}


class TestSpecVectors:
    @pytest.mark.parametrize(("secret", "method", "path", "body", "expected"), [
        ("sk_live_test", "GET", "/v1/payments", "",
         "261f9c21170ae0adf7d59ce49bfe2990659729e728285dccd90a6a7855820bff"),
        ("sk_test_" + "0123456789abcdef" * 4, "POST", "/v1/sdk/payments", '{"amount":"100.00","currency":"USDT"}',
         "88a570ac9d4f9b74b33ac2e156580c865482a47895e64a8504e42980ace48586"),
        ("sk_test_" + "0123456789abcdef" * 4, "GET", "/v1/sdk/payments?page=1&perPage=20", "",
         "f44930525f3de554f64508302349ef13e29b5a728923ad9020d0b8c1cb544384"),
    ])
    def test_server_and_fixture_signers_match_the_spec(self, secret: str, method: str, path: str, body: str,
                                                       expected: str) -> None:
        from node.auth.hmac_signing import sign

        assert sign(secret, "1700000000000", method, path, body.encode()) == expected
        assert hmac_headers("ak_x", secret, method, path, body, ts=1700000000000)["x-signature"] == expected


class TestAccepted:
    async def test_a_signed_get_with_query_is_accepted(self, http: httpx.AsyncClient,
                                                       merchant_account: MerchantAccount) -> None:
        path = "/v1/sdk/echo?page=1&perPage=20&search=a%20b"
        reply = await http.get(path, headers=merchant_account.signed("GET", path))
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"merchantId": str(merchant_account.merchant_id), "mode": "test",
                                "kycStatus": "APPROVED", "body": ""}

    async def test_a_signed_post_body_is_seen_by_the_route(self, http: httpx.AsyncClient,
                                                          merchant_account: MerchantAccount) -> None:
        body = orjson.dumps({"amount": "100.00", "currency": "USDT", "note": "අයුබෝවන්"})
        reply = await http.post("/v1/sdk/echo", content=body,
                                headers=merchant_account.signed("POST", "/v1/sdk/echo", body, mode="live"))
        assert reply.status_code == 200, reply.text
        assert reply.json()["mode"] == "live" and reply.json()["body"] == body.decode()

    async def test_current_merchant_takes_hmac_too(self, http: httpx.AsyncClient,
                                                   merchant_account: MerchantAccount) -> None:
        reply = await http.get("/v1/echo-any", headers=merchant_account.signed("GET", "/v1/echo-any"))
        assert reply.status_code == 200 and reply.json()["role"] is None
        reply = await http.get("/v1/echo-any", headers=merchant_account.auth_headers)
        assert reply.status_code == 200 and reply.json()["role"] == "ADMIN"


class TestRejected:
    @pytest.mark.parametrize("drop", ["x-api-key", "x-timestamp", "x-signature"])
    async def test_each_missing_header(self, http: httpx.AsyncClient, merchant_account: MerchantAccount,
                                       drop: str) -> None:
        headers = merchant_account.signed("GET", "/v1/sdk/echo")
        del headers[drop]
        _unauthorized(await http.get("/v1/sdk/echo", headers=headers), MISSING)

    @pytest.mark.parametrize("ts", ["-310000", "+310000", "abc", "1.5e12", "-1", ""])
    async def test_expired_or_invalid_timestamp(self, http: httpx.AsyncClient, merchant_account: MerchantAccount,
                                                ts: str) -> None:
        if ts[:1] in "+-" and ts[1:].isdigit() and len(ts) > 2:
            ts = str(int(time.time() * 1000) + int(ts))
        headers = merchant_account.signed("GET", "/v1/sdk/echo", ts=int(ts) if ts.isdigit() else None)
        headers["x-timestamp"] = ts
        expected = MISSING if ts == "" else BAD_TS
        _unauthorized(await http.get("/v1/sdk/echo", headers=headers), expected)

    async def test_unknown_key(self, http: httpx.AsyncClient) -> None:
        headers = hmac_headers("ak_test_" + "0" * 32, "sk_test_" + "1" * 64, "GET", "/v1/sdk/echo")
        _unauthorized(await http.get("/v1/sdk/echo", headers=headers), BAD_KEY)

    async def test_wrong_secret(self, http: httpx.AsyncClient, merchant_account: MerchantAccount) -> None:
        headers = hmac_headers(merchant_account.test_key[0], "sk_test_" + "1" * 64, "GET", "/v1/sdk/echo")
        _unauthorized(await http.get("/v1/sdk/echo", headers=headers), BAD_SIG)

    async def test_uppercase_signature_is_refused(self, http: httpx.AsyncClient,
                                                  merchant_account: MerchantAccount) -> None:
        headers = merchant_account.signed("GET", "/v1/sdk/echo")
        headers["x-signature"] = headers["x-signature"].upper()
        _unauthorized(await http.get("/v1/sdk/echo", headers=headers), BAD_SIG)

    async def test_tampered_body(self, http: httpx.AsyncClient, merchant_account: MerchantAccount) -> None:
        headers = merchant_account.signed("POST", "/v1/sdk/echo", b'{"amount":"1"}')
        _unauthorized(await http.post("/v1/sdk/echo", content=b'{"amount":"9"}', headers=headers), BAD_SIG)

    async def test_replayed_signature(self, http: httpx.AsyncClient, merchant_account: MerchantAccount) -> None:
        headers = merchant_account.signed("GET", "/v1/sdk/echo")
        assert (await http.get("/v1/sdk/echo", headers=headers)).status_code == 200
        _unauthorized(await http.get("/v1/sdk/echo", headers=headers), BAD_SIG)

    async def test_revoked_key(self, http: httpx.AsyncClient, resources: Resources,
                               merchant_account: MerchantAccount) -> None:
        from node.merchants import api_keys

        async with resources.db.unit_of_work() as session:
            await api_keys.revoke_key(session, merchant_account.merchant_id, merchant_account.test_key_pk,
                                      reason="leaked", actor_id=merchant_account.user_id)
        _unauthorized(await http.get("/v1/sdk/echo", headers=merchant_account.signed("GET", "/v1/sdk/echo")),
                      BAD_KEY)

    @pytest.mark.parametrize("status", ["FROZEN", "INACTIVE", "TERMINATED"])
    async def test_non_active_merchant_keys_stop_at_once(self, http: httpx.AsyncClient, resources: Resources,
                                                         status: str) -> None:
        from node.merchants import service

        account = await make_merchant(resources)
        ok = await http.get("/v1/sdk/echo", headers=account.signed("GET", "/v1/sdk/echo"))
        assert ok.status_code == 200
        async with resources.db.unit_of_work() as session:
            await service.change_status(session, account.merchant_id, status, reason="test", actor_id=None,
                                        actor_type="SYSTEM")
        _unauthorized(await http.get("/v1/sdk/echo", headers=account.signed("GET", "/v1/sdk/echo")), BAD_KEY)
        # its portal token stops too
        assert (await http.get("/v1/echo-any", headers=account.auth_headers)).status_code == 401

    async def test_a_kyc_decision_reaches_a_key_already_in_use(self, http: httpx.AsyncClient,
                                                               resources: Resources) -> None:
        # keys are cached per process: the principal must not keep the KYC state it was cached with
        from node.merchants import service

        account = await make_merchant(resources, kyc="PENDING")
        before = await http.get("/v1/sdk/echo", headers=account.signed("GET", "/v1/sdk/echo"))
        assert before.json()["kycStatus"] == "PENDING"
        async with resources.db.unit_of_work() as session:
            merchant = await service.get(session, account.merchant_id, for_update=True)
            await service.transition_kyc(session, merchant, "UNDER_REVIEW", actor_type="SYSTEM", actor_id=None)
        after = await http.get("/v1/sdk/echo", headers=account.signed("GET", "/v1/sdk/echo"))
        assert after.json()["kycStatus"] == "UNDER_REVIEW"

    async def test_sdk_routes_refuse_a_portal_token(self, http: httpx.AsyncClient,
                                                    merchant_account: MerchantAccount) -> None:
        _unauthorized(await http.get("/v1/sdk/echo", headers=merchant_account.auth_headers), MISSING)


class TestRateLimit:
    async def test_each_key_is_rate_limited_in_the_same_round_trip(self, resources: Resources) -> None:
        settings = resources.settings.model_copy(update={"rate_limits": {"api": "3/60"}})
        app = create_app(settings, resources)
        router = APIRouter()

        @router.get("/v1/sdk/limited")
        async def limited(principal: ApiKeyMerchant) -> dict[str, str]:
            return {"ok": "yes"}

        app.include_router(router)
        account = await make_merchant(resources)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            replies = [await client.get("/v1/sdk/limited", headers=account.signed("GET", "/v1/sdk/limited"))
                       for _ in range(4)]
        assert [r.status_code for r in replies] == [200, 200, 200, 429]
        assert replies[0].headers["x-ratelimit-limit"] == "3" and replies[2].headers["x-ratelimit-remaining"] == "0"
        assert replies[3].json()["error"]["code"] == "RATE_LIMITED" and "retry-after" in replies[3].headers


async def test_without_redis_a_payment_is_refused_with_503_and_nothing_stored(resources: Resources) -> None:
    """The replay check needs Redis: when it is unreachable, requests fail closed, on the hot
    payment route too (it authenticates without FastAPI's dependencies)."""
    merchant = await make_merchant(resources)
    unreachable = dataclasses.replace(resources, scripts=PipelinedRedis(f"redis://127.0.0.1:{free_port()}/0"))
    transport = httpx.ASGITransport(app=create_app(resources.settings, unreachable))
    body = b'{"amount":"10.00","currency":"USDT","merchantTradeNo":"no-redis"}'
    water = await write_high_water(resources)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        reply = await client.post("/v1/sdk/payments", content=body, headers={
            "content-type": "application/json", **hmac_headers(*merchant.test_key, "POST", "/v1/sdk/payments", body)})
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"] == {"code": "SERVICE_UNAVAILABLE",
                                     "message": "authentication temporarily unavailable"}
    assert await write_high_water(resources) == water
