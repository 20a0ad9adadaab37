"""Bad input on every payment, link and exchange route a client can call: each answer is a 4xx
with a stable code, and nothing is stored (no payment, link, idempotency record, outbox message,
audit entry or instant-access reservation). Also the SDK list's rules (spec section 2), the
create body's key aliases, and the payment-link page's gaps (QR page flag, refused payments that
must leave nothing behind, concurrent renames). Real app, real PostgreSQL and anvil."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from api.app import create_app
from node.merchants.models import Merchant
from node.payments import links
from node.payments.models import IdempotencyRecord, Payment, PaymentLink
from node.resources import Resources
from tests.api.sdk_client import SdkClient
from tests.fixtures.accounts import MerchantAccount, make_merchant, write_high_water
from tests.fixtures.payments import PaymentNode

INVALID_JSON, INVALID_AMOUNT, VALIDATION = "INVALID_JSON", "INVALID_AMOUNT", "VALIDATION_ERROR"
CREATE_ROUTES = ("/v1/sdk/payments", "/v1/payments", "/v1/sdk/checkout/sessions")
NUL = "\x00"

# what a client can get wrong in a create body, for all three create routes (sdk, REST, sessions)
BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("orderExpireTime before year 1 in UTC", {"orderExpireTime": "0001-01-01T00:00:00+01:00"}, VALIDATION),
    ("orderExpireTime after year 9999 in UTC", {"orderExpireTime": "9999-12-31T23:59:59-01:00"}, VALIDATION),
    ("orderExpireTime without an offset", {"orderExpireTime": "2030-01-01T00:00:00"}, VALIDATION),
    ("orderExpireTime a number", {"orderExpireTime": 1_700_000_000}, VALIDATION),
    ("orderExpireTime not a time", {"orderExpireTime": "tomorrow"}, VALIDATION),
    ("expiresInMinutes past year 9999", {"expiresInMinutes": 5_000_000_000}, VALIDATION),
    ("expiresInMinutes over 7 days", {"expiresInMinutes": 7 * 24 * 60 + 1}, VALIDATION),
    ("expiresInMinutes a string", {"expiresInMinutes": "15"}, VALIDATION),
    ("expiresInMinutes zero", {"expiresInMinutes": 0}, VALIDATION),
    ("expiresInMinutes a fraction", {"expiresInMinutes": 1.5}, VALIDATION),
    ("expiresInMinutes a boolean", {"expiresInMinutes": True}, VALIDATION),
    ("NUL in customerBilling", {"customerBilling": {"firstName": "Ann" + NUL}}, VALIDATION),
    ("NUL in customerBilling.email", {"customerBilling": {"email": f"a{NUL}@b.example"}}, VALIDATION),
    # the stored billing fields are cut at 300 characters, the e-mail taken from them at 320
    ("NUL past 300 characters of customerBilling.email",
     {"customerBilling": {"email": "a" * 301 + NUL + "@b.example"}}, VALIDATION),
    ("customerEmail past 320 characters once in lower case", {"customerEmail": "İ" * 200 + "@b.example"},
     VALIDATION),
    ("customerBilling a list", {"customerBilling": ["Ann"]}, VALIDATION),
    ("NUL in goods", {"goods": [{"name": "tea" + NUL, "description": "x"}]}, VALIDATION),
    ("NUL in goods.mccCode", {"goods": [{"name": "tea", "mccCode": NUL}]}, VALIDATION),
    ("goods a string", {"goods": "tea"}, VALIDATION),
    ("goods of strings", {"goods": ["tea"]}, VALIDATION),
    ("101 goods", {"goods": [{"name": "tea"}] * 101}, VALIDATION),
    ("NUL in lineItems", {"lineItems": [{"name": "tea" + NUL, "amount": "1"}]}, VALIDATION),
    ("NUL in merchantTradeNo", {"merchantTradeNo": "A" + NUL}, VALIDATION),
    ("NUL in description", {"description": NUL}, VALIDATION),
    ("NUL in customerEmail", {"customerEmail": f"a{NUL}@b.example"}, VALIDATION),
    ("NUL in successUrl", {"successUrl": "https://shop.example/" + NUL}, VALIDATION),
    ("webhookURL not http(s)", {"webhookURL": "ftp://shop.example/hook"}, VALIDATION),
    ("customerEmail not an address", {"customerEmail": "nobody"}, VALIDATION),
    ("merchantTradeNo too long", {"merchantTradeNo": "x" * 201}, VALIDATION),
    ("merchantTradeNo a number", {"merchantTradeNo": 5}, VALIDATION),
    ("LKR amount below a cent", {"amount": "0.001", "currency": "LKR"}, INVALID_AMOUNT),
    ("LKR amount with 3 decimals", {"amount": "10.005", "currency": "LKR"}, INVALID_AMOUNT),
    ("amount with an exponent", {"amount": "1e3"}, INVALID_AMOUNT),
    ("amount NaN", {"amount": "NaN"}, INVALID_AMOUNT),
    ("amount Infinity", {"amount": "Infinity"}, INVALID_AMOUNT),
    ("amount an object", {"amount": {"value": "5"}}, INVALID_AMOUNT),
    ("amount a list", {"amount": ["5"]}, INVALID_AMOUNT),
    ("amount a boolean", {"amount": True}, INVALID_AMOUNT),
    ("amount with NUL", {"amount": "5" + NUL}, INVALID_AMOUNT),
    ("amount zero", {"amount": "0"}, VALIDATION),
    ("amount negative zero", {"amount": "-0.00"}, VALIDATION),
    ("amount of 20 digits", {"amount": "1" * 20}, VALIDATION),
    ("amount finer than the token", {"amount": "1." + "0" * 18 + "1"}, VALIDATION),
    ("currency unsupported", {"currency": "EUR"}, VALIDATION),
    ("currency a number", {"currency": 5}, VALIDATION),
    ("currency with NUL", {"currency": "USDT" + NUL}, VALIDATION),
    ("provider unsupported", {"provider": "PAYPAL"}, VALIDATION),
    ("provider a number", {"provider": 7}, VALIDATION),
    ("branchId not a UUID", {"branchId": "branch-1"}, VALIDATION),
    ("branchId a number", {"branchId": 5}, VALIDATION),
    ("branchId with NUL", {"branchId": str(uuid.uuid4())[:-1] + NUL}, VALIDATION),
    ("branchId not the merchant's", {"branchId": str(uuid.uuid4())}, VALIDATION),
]
# bodies that are not a create request at all
GARBAGE: list[tuple[bytes, str]] = [
    (b"", INVALID_JSON), (b"null", INVALID_JSON), (b"[]", INVALID_JSON), (b'"5"', INVALID_JSON), (b"12", INVALID_JSON),
    (b"{", INVALID_JSON), (b'{"amount": "5",}', INVALID_JSON), (b'\xff\xfe{"amount": "5"}', INVALID_JSON),
    (b'{"amount": "\xc3\x28"}', INVALID_JSON), (b'{"amount": "\\ud800"}', INVALID_JSON),
    (b"[" * 5000 + b"]" * 5000, INVALID_JSON), (b'{"amount": 1' + b"0" * 30 + b"}", INVALID_AMOUNT),
    (b'{"amount": "5", "amount": "five"}', INVALID_AMOUNT),
    (b'{"amount": "5", "merchantTradeNo": "' + b"x" * 200_000 + b'"}', VALIDATION),
]


def sdk(node: PaymentNode, account: MerchantAccount, mode: str = "test") -> SdkClient:
    return SdkClient(node.http, account.sdk_credential(mode))  # type: ignore[arg-type]


_apps: dict[int, Any] = {}


def public_client(node: PaymentNode) -> httpx.AsyncClient:
    """A visitor of the node's public pages from an address of its own (the public routes' per-IP
    limit is shared with every other test on the loopback client)."""
    app = _apps.get(id(node))
    if app is None:
        app = _apps[id(node)] = create_app(node.settings, node.resources)
    ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 40000)), base_url="http://node",
                             timeout=30)


async def stored(node: PaymentNode, merchant_id: uuid.UUID) -> tuple[Any, ...]:
    """What a request could have written: outbox and audit high water, and the merchant's
    payments, links, idempotency records and instant-access reservation."""
    async with node.resources.db.unit_of_work() as session:
        def count(model: Any) -> Any:
            return select(func.count()).select_from(model).where(model.merchant_id == merchant_id)
        counts = [await session.scalar(count(m)) for m in (Payment, PaymentLink, IdempotencyRecord)]
        used = await session.scalar(select(Merchant.instant_access_used).where(Merchant.id == merchant_id))
    return (await write_high_water(node.resources), *counts, used)


@pytest_asyncio.fixture(scope="module")
async def shop(resources: Resources) -> MerchantAccount:
    return await make_merchant(resources)


@pytest_asyncio.fixture
async def visitor(pay_node: PaymentNode) -> AsyncIterator[httpx.AsyncClient]:
    async with public_client(pay_node) as client:
        yield client


def slug() -> str:
    return "bad-" + uuid.uuid4().hex[:12]


async def make_link(client: SdkClient, **fields: Any) -> dict[str, Any]:
    reply = await client.request("POST", "/v1/payment-links", {"name": "Tea", "slug": slug(), **fields})
    assert reply.status_code == 201, reply.text
    return reply.json()["data"]  # type: ignore[no-any-return]


class TestCreateRoutes:
    @pytest.mark.parametrize("path", CREATE_ROUTES)
    async def test_every_bad_field_is_a_400_with_its_code_and_stores_nothing(
            self, path: str, pay_node: PaymentNode, shop: MerchantAccount) -> None:
        await pay_node.set_rate("300")
        client = sdk(pay_node, shop)
        before = await stored(pay_node, shop.merchant_id)
        for name, fields, code in BAD_BODIES:
            body = {"amount": "5", "currency": "USDT", **fields}
            for headers in (None, {"Idempotency-Key": uuid.uuid4().hex}):
                reply = await client.request("POST", path, body, headers=headers)
                assert reply.status_code == 400, (name, reply.status_code, reply.text[:300])
                assert reply.json()["error"]["code"] == code, (name, reply.text[:300])
        for raw, code in GARBAGE:
            reply = await client.request("POST", path, raw=raw)
            assert reply.status_code == 400, (raw[:40], reply.status_code, reply.text[:300])
            assert reply.json()["error"]["code"] == code, (raw[:40], reply.text[:300])
        await asyncio.sleep(0.1)
        assert await stored(pay_node, shop.merchant_id) == before

    async def test_expiry_bounds_and_messages(self, pay_node: PaymentNode, shop: MerchantAccount) -> None:
        client = sdk(pay_node, shop)
        before = await stored(pay_node, shop.merchant_id)
        past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        far = (datetime.now(UTC) + timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for path in ("/v1/sdk/payments", "/v1/payments"):
            for body, message in (
                ({"orderExpireTime": past}, "invalid payment data: orderExpireTime must be in the future"),
                ({"orderExpireTime": far}, "invalid payment data: expiry is too far in the future"),
                ({"orderExpireTime": "0001-01-01T00:00:00+01:00"},
                 "invalid payment data: orderExpireTime is out of range"),
                ({"expiresInMinutes": 5_000_000_000}, "invalid payment data: expiry is too far in the future"),
            ):
                reply = await client.request("POST", path, {"amount": "5", **body})
                assert reply.json() == {"error": {"code": VALIDATION, "message": message}}, (path, body)
        sessions = await client.request("POST", "/v1/sdk/checkout/sessions",
                                        {"amount": "5", "expiresInMinutes": 5_000_000_000})
        assert sessions.json()["error"] == {"code": VALIDATION,
                                            "message": "invalid payment data: expiry is too far in the future"}
        missing = await client.request("POST", "/v1/sdk/checkout/sessions", {"currency": "USDT"})
        assert missing.json()["error"] == {"code": VALIDATION, "message": "amount is required"}
        assert await stored(pay_node, shop.merchant_id) == before
        # the largest allowed expiry and an LKR amount of one cent are fine
        week = await client.create_payment(amount="5", expiresInMinutes=7 * 24 * 60)
        cent = await client.create_payment(amount="0.01", currency="LKR")
        assert (week.status_code, cent.status_code) == (201, 201), (week.text, cent.text)
        assert cent.json()["data"]["amountLkr"] == "0.01" and cent.json()["data"]["amountUsdt"] == "0.0001"

    async def test_unsupported_provider_is_a_validation_error(self, pay_node: PaymentNode,
                                                              shop: MerchantAccount) -> None:
        # the reference server answers 500 INTERNAL_ERROR "failed to create payment" for a provider
        # it has no adapter for; the node refuses the client's input as a 400 (no SDK reads the code)
        reply = await sdk(pay_node, shop).create_payment(amount="5", provider="PAYPAL")
        assert reply.status_code == 400
        assert reply.json() == {"error": {"code": VALIDATION,
                                          "message": "invalid payment data: unsupported provider PAYPAL"}}

    async def test_webhook_url_aliases_are_both_accepted(self, pay_node: PaymentNode,
                                                          shop: MerchantAccount) -> None:
        client = sdk(pay_node, shop)
        for key in ("webhookURL", "webhookUrl", "WEBHOOKURL"):
            url = f"https://shop.example/hooks/{key}"
            reply = await client.create_payment(amount="5", **{key: url})
            assert reply.status_code == 201, reply.text
            async with pay_node.resources.db.unit_of_work() as session:
                payment = await session.get(Payment, uuid.UUID(reply.json()["data"]["id"]))
            assert payment is not None and payment.webhook_url == url


class TestIdsAndLookups:
    async def test_malformed_ids_are_400_and_unknown_ones_404(self, pay_node: PaymentNode,
                                                              shop: MerchantAccount) -> None:
        client = sdk(pay_node, shop)
        for bad in ("nope", "1234", "%00", "00000000-0000-0000-0000-00000000000g", "%27%20OR%201=1%20--"):
            for path in (f"/v1/sdk/payments/{bad}", f"/v1/payments/{bad}"):
                reply = await client.request("GET", path)
                assert reply.status_code == 400, (path, reply.text)
                assert reply.json()["error"] == {"code": "INVALID_ID", "message": "invalid payment ID format"}
            for method in ("GET", "PATCH", "DELETE"):
                reply = await client.request(method, f"/v1/payment-links/{bad}", {"name": "x"})
                assert reply.status_code == 400 and reply.json()["error"]["code"] == "INVALID_ID", (method, bad)
        unknown = uuid.uuid4()
        for path in (f"/v1/sdk/payments/{unknown}", f"/v1/payments/{unknown}", f"/v1/payment-links/{unknown}"):
            reply = await client.request("GET", path)
            assert reply.status_code == 404 and reply.json()["error"]["code"] == "NOT_FOUND", path
        for bad in ("%00", "a%00b", "x" * 300):  # the simulator's providerPayId: nothing to look up
            reply = await pay_node.http.post(f"/test/simulate/{bad}")
            assert reply.status_code == 404 and reply.json()["error"]["code"] == "NOT_FOUND", (bad, reply.text)


class TestLists:
    async def test_rest_list_and_csv_refuse_bad_filters(self, pay_node: PaymentNode, shop: MerchantAccount) -> None:
        client = sdk(pay_node, shop)
        before = await stored(pay_node, shop.merchant_id)
        for query in ("dateFrom=0001-01-01T00:00:00%2B01:00", "dateTo=9999-12-31T23:59:59-01:00",
                      "dateFrom=2026-01-01T00:00:00", "dateFrom=yesterday", "dateTo=%00", "search=%00",
                      "search=" + "x" * 201, "page=100000000000000000000", "page=1000000001", "page=x",
                      "perPage=1e3", "page=" + "9" * 5000, "status=NOPE", "status=%00", "branchId=1",
                      "branchId=%00", "mode=prod"):
            for path in ("/v1/payments", "/v1/payments/export.csv"):
                if path.endswith(".csv") and query.startswith(("page", "perPage")):
                    continue  # the export has no pages
                reply = await client.request("GET", f"{path}?{query}")
                assert reply.status_code == 400, (path, query, reply.status_code, reply.text[:200])
                assert reply.json()["error"]["code"] == ("INVALID_ID" if "branchId" in query else VALIDATION)
        far = await client.request("GET", "/v1/payments?page=1000000000")
        assert far.status_code == 200 and far.json()["data"] == [] and far.json()["meta"]["page"] == 1_000_000_000
        assert await stored(pay_node, shop.merchant_id) == before

    async def test_sdk_list_takes_what_the_reference_takes(self, pay_node: PaymentNode,
                                                          resources: Resources) -> None:
        account = await make_merchant(resources)
        client = sdk(pay_node, account)
        made = []
        for n in range(23):
            reply = await client.create_payment(amount=str(n + 1), merchantTradeNo=f"LIST-{n}")
            assert reply.status_code == 201, reply.text
            made.append(reply.json()["data"])
        newest_first = [p["id"] for p in reversed(made)]

        async def listed(query: str) -> dict[str, Any]:
            reply = await client.request("GET", f"/v1/sdk/payments{query}")
            assert reply.status_code == 200, (query, reply.text)
            return reply.json()  # type: ignore[no-any-return]

        first = await listed("")
        assert [p["id"] for p in first["data"]] == newest_first[:20]
        assert first["meta"] == {"total": 23, "page": 1, "perPage": 20}
        # perPage over 100: 20 rows, the asked value echoed
        big = await listed("?perPage=500")
        assert len(big["data"]) == 20 and big["meta"] == {"total": 23, "page": 1, "perPage": 500}
        assert (await listed("?perPage=100"))["meta"]["perPage"] == 100
        assert len((await listed("?perPage=100"))["data"]) == 23
        # an invalid page is page 1; a page past the end is empty
        for page in ("0", "-2", "x", "1.5", "100000000000000000000", "%00", "", "%EF%BC%93"):
            got = await listed(f"?page={page}&perPage=5")
            assert got["meta"]["page"] == 1 and [p["id"] for p in got["data"]] == newest_first[:5], page
        assert (await listed("?perPage=abc"))["meta"]["perPage"] == 20
        second = await listed("?page=2&perPage=10")
        assert [p["id"] for p in second["data"]] == newest_first[10:20]
        past = await listed("?page=999999999999999&perPage=100")
        assert past["data"] == [] and past["meta"] == {"total": 23, "page": 999999999999999, "perPage": 100}
        # status filter: exact wire status
        assert (await listed("?status=INITIATED"))["meta"]["total"] == 23
        assert (await listed("?status=PAID"))["meta"]["total"] == 0
        assert (await listed("?status=initiated"))["meta"]["total"] == 0
        assert (await listed("?status=%00"))["meta"]["total"] == 0
        # dates: RFC3339, inclusive; times Python cannot hold are the earliest or latest there is
        created = [datetime.fromisoformat(p["createdAt"].replace("Z", "+00:00")) for p in made]
        middle = created[11].strftime("%Y-%m-%dT%H:%M:%SZ")
        after = await listed(f"?dateFrom={middle}&perPage=100")
        assert after["meta"]["total"] == sum(1 for c in created if c >= created[11].replace(microsecond=0))
        hour = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (await listed(f"?dateFrom={hour}"))["meta"]["total"] == 0
        assert (await listed(f"?dateTo={hour}"))["meta"]["total"] == 23
        assert (await listed("?dateFrom=0001-01-01T00:00:00%2B01:00"))["meta"]["total"] == 23
        assert (await listed("?dateTo=0001-01-01T00:00:00%2B01:00"))["meta"]["total"] == 0
        assert (await listed("?dateTo=9999-12-31T23:59:59-01:00"))["meta"]["total"] == 23
        assert (await listed("?dateFrom=9999-12-31T23:59:59-01:00"))["meta"]["total"] == 0
        # what is not an RFC3339 time with an offset does not filter (as the reference ignores it)
        for ignored in ("yesterday", "2999-01-01T00:00:00", "%00", "2026-13-01T00:00:00Z"):
            assert (await listed(f"?dateFrom={ignored}"))["meta"]["total"] == 23, ignored
        assert (await listed("?branchId=nope"))["meta"]["total"] == 23
        assert [p["id"] for p in (await listed("?search=list-22"))["data"]] == [made[22]["id"]]

    async def test_sdk_list_refuses_a_search_it_cannot_run(self, pay_node: PaymentNode,
                                                          shop: MerchantAccount) -> None:
        client = sdk(pay_node, shop)
        for query in ("search=%00", "search=a%00b", "search=" + "x" * 201):
            reply = await client.request("GET", f"/v1/sdk/payments?{query}")
            assert reply.status_code == 400 and reply.json()["error"]["code"] == VALIDATION, query


class TestLinks:
    async def test_create_and_update_refuse_bad_fields_and_store_nothing(
            self, pay_node: PaymentNode, shop: MerchantAccount) -> None:
        client = sdk(pay_node, shop)
        link = await make_link(client, amount="100", currency="LKR")
        good = {"name": "Tea", "amount": "100", "currency": "LKR"}
        bad: list[tuple[dict[str, Any], str]] = [
            ({"expireAt": "0001-01-01T00:00:00+01:00"}, VALIDATION),
            ({"expireAt": "9999-12-31T23:59:59-01:00"}, VALIDATION),
            ({"expireAt": "2030-01-01T00:00:00"}, VALIDATION), ({"expireAt": 5}, VALIDATION),
            ({"name": "Tea" + NUL}, VALIDATION), ({"name": ""}, VALIDATION), ({"name": 5}, VALIDATION),
            ({"description": NUL}, VALIDATION), ({"merchantTradeNo": "A" + NUL}, VALIDATION),
            ({"successUrl": "https://shop.example/" + NUL}, VALIDATION), ({"cancelUrl": "javascript:1"}, VALIDATION),
            ({"webhookUrl": ["https://x.example"]}, VALIDATION),
            ({"amount": "0.001"}, INVALID_AMOUNT), ({"amount": "10.005"}, INVALID_AMOUNT),
            ({"amount": "1e3"}, INVALID_AMOUNT), ({"amount": {"v": 1}}, INVALID_AMOUNT), ({"amount": "-1"}, VALIDATION),
            ({"allowCustomAmount": True, "minAmount": "0.001"}, INVALID_AMOUNT),
            ({"amount": "5", "currency": "EUR"}, VALIDATION), ({"currency": NUL}, VALIDATION),
            ({"maxQuantity": 10_001}, VALIDATION), ({"maxQuantity": 2.5}, VALIDATION),
            ({"maxQuantity": True}, VALIDATION),
            ({"orderExpireMinutes": 5_000_000_000}, VALIDATION), ({"orderExpireMinutes": "15"}, VALIDATION),
            ({"reusable": "no"}, VALIDATION), ({"showQr": 1}, VALIDATION), ({"status": "DELETED"}, VALIDATION),
            ({"status": ["ACTIVE"]}, VALIDATION),
        ]
        before = await stored(pay_node, shop.merchant_id)
        for fields, code in [*bad, ({"slug": "x" + NUL}, VALIDATION), ({"slug": "UPPER"}, VALIDATION)]:
            reply = await client.request("POST", "/v1/payment-links", {**good, "slug": slug(), **fields})
            assert reply.status_code == 400, (fields, reply.status_code, reply.text[:200])
            assert reply.json()["error"]["code"] == code, (fields, reply.text[:200])
        for fields, code in bad:
            reply = await client.request("PATCH", f"/v1/payment-links/{link['id']}", fields)
            assert reply.status_code == 400, (fields, reply.status_code, reply.text[:200])
            assert reply.json()["error"]["code"] == code, (fields, reply.text[:200])
        for raw, code in GARBAGE:
            for method, path in (("POST", "/v1/payment-links"), ("PATCH", f"/v1/payment-links/{link['id']}")):
                reply = await client.request(method, path, raw=raw)
                # a 400 with a stable code (a body that is no JSON object: VALIDATION_ERROR here, as before)
                expected = {INVALID_JSON, VALIDATION} if code == INVALID_JSON else {INVALID_AMOUNT, VALIDATION}
                assert reply.status_code == 400 and reply.json()["error"]["code"] in expected, (
                    method, raw[:40], reply.status_code, reply.text[:200])
        for query in ("page=100000000000000000000", "page=x", "perPage=%00"):
            reply = await client.request("GET", f"/v1/payment-links?{query}")
            assert reply.status_code == 400 and reply.json()["error"]["code"] == VALIDATION, query
        await asyncio.sleep(0.1)
        assert await stored(pay_node, shop.merchant_id) == before
        got = (await client.request("GET", f"/v1/payment-links/{link['id']}")).json()["data"]
        assert got == link

    async def test_pay_form_refuses_bad_input_and_stores_nothing(
            self, pay_node: PaymentNode, shop: MerchantAccount, visitor: httpx.AsyncClient) -> None:
        await pay_node.set_rate("300")
        client = sdk(pay_node, shop)
        custom = await make_link(client, currency="LKR", allowCustomAmount=True, allowQuantity=True, maxQuantity=3)
        before = await stored(pay_node, shop.merchant_id)
        for form in ({"amount": "100", "email": f"a{NUL}@b.example"}, {"amount": "0.001"}, {"amount": "10.005"},
                     {"amount": "1e3"}, {"amount": "5" + NUL}, {"amount": ""}, {"amount": "1" * 20},
                     {"amount": "100", "quantity": "9" * 5000}, {"amount": "100", "quantity": "4"},
                     {"amount": "100", "quantity": NUL}):
            reply = await visitor.post(f"/pay/{custom['slug']}", data=form)
            assert reply.status_code == 400, (form, reply.status_code, reply.text[:200])
        for path in ("/pay/%00", "/pay/a%00b", "/pay/" + "x" * 300, "/pay/UPPER"):
            assert (await visitor.post(path, data={"amount": "100"})).status_code == 404, path
            assert (await visitor.get(path)).status_code == 404, path
            assert (await visitor.get(f"/v1/public/payment-links/by-slug/{path[5:]}")).status_code == 404, path
        raw = await visitor.post(f"/pay/{custom['slug']}", content=b"\xff\xfe\x00",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
        assert raw.status_code == 400, raw.text[:200]
        await asyncio.sleep(0.1)
        assert await stored(pay_node, shop.merchant_id) == before
        made = await visitor.post(f"/pay/{custom['slug']}", data={"amount": "100.5", "email": "Ann@Buyer.example"})
        assert made.status_code == 303, made.text[:300]
        # an e-mail that lower case makes longer than 320 characters is left out, as a longer one is
        longer = await visitor.post(f"/pay/{custom['slug']}", data={"amount": "100", "email": "İ" * 200 + "@b.lk"})
        assert longer.status_code == 303, longer.text[:300]
        async with pay_node.resources.db.unit_of_work() as session:
            ids = [uuid.UUID(reply.headers["location"].rsplit("/", 1)[1]) for reply in (made, longer)]
            emails = [(await session.get(Payment, payment_id)).customer_email for payment_id in ids]  # type: ignore[union-attr]
        assert emails == ["ann@buyer.example", None]

    async def test_the_link_page_shows_amounts_as_written(
            self, pay_node: PaymentNode, shop: MerchantAccount, visitor: httpx.AsyncClient) -> None:
        client = sdk(pay_node, shop)
        fixed = await make_link(client, currency="LKR", amount="1500")
        custom = await make_link(client, currency="LKR", allowCustomAmount=True, minAmount="100", maxAmount="2500.5")
        page = (await visitor.get(f"/pay/{fixed['slug']}")).text
        assert "1500 LKR" in page and "E+" not in page
        page = (await visitor.get(f"/pay/{custom['slug']}")).text
        assert 'placeholder="min 100"' in page, page

    async def test_qr_pages_follow_the_show_qr_flag_and_unknown_links_are_404(
            self, pay_node: PaymentNode, shop: MerchantAccount, visitor: httpx.AsyncClient) -> None:
        client = sdk(pay_node, shop)
        shown = await make_link(client, amount="5", currency="USDT")
        hidden = await make_link(client, amount="5", currency="USDT", showQr=False)
        assert shown["showQr"] is True and hidden["showQr"] is False
        png = await visitor.get(f"/pay/{shown['slug']}/qr.png")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert (await visitor.get(f"/pay/{shown['slug']}/poster")).status_code == 200
        for path in (f"/pay/{hidden['slug']}/qr.png", f"/pay/{hidden['slug']}/poster", f"/pay/{slug()}/qr.png",
                     f"/pay/{slug()}/poster", "/pay/%00/qr.png"):
            assert (await visitor.get(path)).status_code == 404, path
        # the flag is the merchant's to turn on again; the payment page itself never depended on it
        assert (await visitor.get(f"/pay/{hidden['slug']}")).status_code == 200
        patched = await client.request("PATCH", f"/v1/payment-links/{hidden['id']}", {"showQr": True})
        assert patched.json()["data"]["showQr"] is True
        assert (await visitor.get(f"/pay/{hidden['slug']}/qr.png")).status_code == 200
        await client.request("DELETE", f"/v1/payment-links/{hidden['id']}")
        assert (await visitor.get(f"/pay/{hidden['slug']}/qr.png")).status_code == 404

    async def test_a_refused_live_link_payment_leaves_no_reservation(
            self, pay_node: PaymentNode, resources: Resources, visitor: httpx.AsyncClient) -> None:
        await pay_node.set_rate("300")
        account = await make_merchant(resources, kyc="INSTANT_ACCESS")
        email = f"{uuid.uuid4().hex[:8]}@buyer.example"
        live = sdk(pay_node, account, "live")
        for _ in range(50):  # a busy customer: 50 live payments of 1 USDT in the last hour
            reply = await live.create_payment(amount="1", customerEmail=email)
            assert reply.status_code == 201, reply.text
        link = await make_link(live, amount="1000", currency="USDT")
        small = await make_link(live, amount="1", currency="USDT")
        assert link["mode"] == "live"
        before = await stored(pay_node, account.merchant_id)
        # hour and day velocity (30 + 25) and 1000x the merchant's average (25): blocked, under the
        # instant-access cap, so the reservation was made before the risk check refused it
        blocked = await visitor.post(f"/pay/{link['slug']}", data={"email": email})
        assert blocked.status_code == 422 and "blocked by risk rules" in blocked.text, blocked.text[:300]
        assert await stored(pay_node, account.merchant_id) == before
        made = await visitor.post(f"/pay/{small['slug']}", data={})
        assert made.status_code == 303, made.text[:300]
        async with pay_node.resources.db.unit_of_work() as session:
            payment = await session.get(Payment, uuid.UUID(made.headers["location"].rsplit("/", 1)[1]))
            used = await session.scalar(select(Merchant.instant_access_used)
                                        .where(Merchant.id == account.merchant_id))
        assert payment is not None and payment.mode == "live" and payment.link_id == uuid.UUID(small["id"])
        assert used == before[-1] + payment.amount_units

    async def test_a_rename_racing_another_to_the_same_slug_is_409(
            self, pay_node: PaymentNode, shop: MerchantAccount) -> None:
        client = sdk(pay_node, shop)
        first, second = await make_link(client, amount="5"), await make_link(client, amount="5")
        wanted = slug()
        db = pay_node.resources.db
        async with db.unit_of_work() as holder:
            one = await links.get_owned(holder, shop.merchant_id, uuid.UUID(first["id"]), branch_id=None)
            await links.update_link(holder, one, {"slug": wanted})  # flushed, not yet committed

            async def rename_second() -> Any:
                # its check cannot see the first rename; its UPDATE waits for it on the unique index
                return await client.request("PATCH", f"/v1/payment-links/{second['id']}", {"slug": wanted})

            racing = asyncio.ensure_future(rename_second())
            await asyncio.sleep(0.5)
            assert not racing.done()
        reply = await racing
        assert reply.status_code == 409, reply.text
        assert reply.json()["error"]["code"] == "SLUG_TAKEN"
        assert (await client.request("GET", f"/v1/payment-links/{second['id']}")).json()["data"]["slug"] == (
            second["slug"])


class TestExchangeHistory:
    @pytest.mark.parametrize("query", [
        "since=0001-01-01T00:00:00%2B14:00", "since=9999-12-31T23:59:59-14:00", "since=2026-01-01T00:00:00",
        "since=2026-01-01", "since=yesterday", "since=%00", "limit=x", "limit=" + "9" * 5000, "base=XXX",
        "quote=%00",
    ])
    async def test_bad_queries_are_400(self, query: str, pay_node: PaymentNode, visitor: httpx.AsyncClient) -> None:
        reply = await visitor.get(f"/v1/exchange-rates/history?{query}")
        assert reply.status_code == 400, (query, reply.status_code, reply.text[:200])
        assert reply.json()["error"]["code"] == VALIDATION

    async def test_since_with_an_offset_is_that_instant(self, pay_node: PaymentNode,
                                                        visitor: httpx.AsyncClient) -> None:
        await pay_node.set_rate("300")
        # a minute ago, written in UTC+01:00: the rate just recorded is after it only if the offset
        # is applied (read as UTC, the time would be 59 minutes ahead)
        local = (datetime.now(UTC) + timedelta(minutes=59)).strftime("%Y-%m-%dT%H:%M:%S")
        recent = await visitor.get(f"/v1/exchange-rates/history?since={local}%2B01:00")
        future = await visitor.get(f"/v1/exchange-rates/history?since={local}Z")
        assert recent.status_code == future.status_code == 200
        assert recent.json()["data"] and future.json()["data"] == []
        assert (await visitor.get("/v1/exchange-rates/history?since=2000-01-01T00:00:00Z&limit=1")).json()["data"]
