"""Payment links (CRUD, slugs, /pay/{slug} rules, usage when paid, expiry job), checkout
session URLs, the merchant REST list/CSV with branch scoping, risk scoring and live mode;
real app, real anvil, the in-process indexer."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text

from node.payments import tasks
from node.payments.models import Payment, PaymentLink
from node.payments.service import intent_of
from node.resources import Resources
from tests.api.sdk_client import SdkClient
from tests.fixtures.accounts import MerchantAccount, add_user, make_merchant
from tests.fixtures.contracts import PAYERS
from tests.fixtures.payments import PaymentNode


def sdk(node: PaymentNode, account: MerchantAccount, mode: str = "test") -> SdkClient:
    return SdkClient(node.http, account.sdk_credential(mode))  # type: ignore[arg-type]


async def payment_count(node: PaymentNode, merchant_id: uuid.UUID) -> int:
    async with node.resources.db.unit_of_work() as session:
        return int((await session.execute(select(func.count()).select_from(Payment).where(
            Payment.merchant_id == merchant_id))).scalar_one())


async def link_row(node: PaymentNode, link_id: str) -> PaymentLink:
    async with node.resources.db.unit_of_work() as session:
        link = await session.get(PaymentLink, uuid.UUID(link_id))
        assert link is not None
        return link


async def pay_in_full(node: PaymentNode, payment_id: uuid.UUID, payer: str) -> None:
    for _ in range(100):  # the request commits after its response is sent
        async with node.resources.db.unit_of_work() as session:
            payment = await session.get(Payment, payment_id)
        if payment is not None:
            break
        await asyncio.sleep(0.02)
    assert payment is not None
    node.chain.chain.fund(payer, int(payment.amount_units))
    node.chain.chain.pay(payer, intent_of(payment), bytes(payment.signature))
    await node.sync()


def slug() -> str:
    return "shop-" + uuid.uuid4().hex[:12]


class TestPaymentLinks:
    async def test_crud_and_slug_rules(self, pay_node: PaymentNode, merchant_account: MerchantAccount,
                                       other_merchant_account: MerchantAccount) -> None:
        client = sdk(pay_node, merchant_account)
        name = slug()
        for bad in ("a", "Upper-Case", "under_score", "x" * 101, "sp ace", ""):
            reply = await client.request("POST", "/v1/payment-links", {"name": "Tea", "slug": bad, "amount": "100"})
            assert reply.status_code == 400 and reply.json()["error"]["code"] == "VALIDATION_ERROR", bad
        for body in ({"name": "Tea", "slug": name},  # neither an amount nor a customer amount
                     {"name": "Tea", "slug": name, "allowCustomAmount": True, "minAmount": "10", "maxAmount": "5"},
                     {"name": "Tea", "slug": name, "amount": "1", "currency": "EUR"},
                     {"name": "Tea", "slug": name, "amount": "1", "maxQuantity": 0}):
            reply = await client.request("POST", "/v1/payment-links", body)
            assert reply.status_code == 400, body
        created = await client.request("POST", "/v1/payment-links", {
            "name": "Ceylon tea", "slug": name, "amount": "1500", "currency": "LKR", "allowQuantity": True,
            "maxQuantity": 3})
        assert created.status_code == 201, created.text
        link = created.json()["data"]
        assert link["slug"] == name and link["status"] == "ACTIVE" and link["usageCount"] == 0
        assert link["url"].endswith(f"/pay/{name}") and link["reusable"] is True
        dup = await sdk(pay_node, other_merchant_account).request(
            "POST", "/v1/payment-links", {"name": "x", "slug": name, "amount": "1"})
        assert dup.status_code == 409 and dup.json()["error"]["code"] == "SLUG_TAKEN"
        free = await client.request("GET", f"/v1/payment-links/check-slug?slug={name}")
        assert free.json()["data"]["available"] is False
        patched = await client.request("PATCH", f"/v1/payment-links/{link['id']}", {"name": "Green tea"})
        assert patched.status_code == 200 and patched.json()["data"]["name"] == "Green tea"
        got = await client.request("GET", f"/v1/payment-links/{link['id']}")
        assert got.json()["data"]["name"] == "Green tea"
        listed = await client.request("GET", "/v1/payment-links?perPage=100")
        assert link["id"] in [x["id"] for x in listed.json()["data"]]
        foreign = await sdk(pay_node, other_merchant_account).request("GET", f"/v1/payment-links/{link['id']}")
        assert foreign.status_code == 404
        deleted = await client.request("DELETE", f"/v1/payment-links/{link['id']}")
        assert deleted.json()["data"]["status"] == "INACTIVE"
        await asyncio.sleep(0.1)
        assert (await pay_node.http.get(f"/pay/{name}")).status_code == 404
        public = await pay_node.http.get(f"/v1/public/payment-links/by-slug/{name}")
        assert public.status_code == 404 and public.json()["error"]["code"] == "NOT_FOUND"

    async def test_amount_and_quantity_rules_on_the_server(self, pay_node: PaymentNode,
                                                           merchant_account: MerchantAccount) -> None:
        client = sdk(pay_node, merchant_account)
        fixed, custom = slug(), slug()
        assert (await client.request("POST", "/v1/payment-links", {
            "name": "Tea", "slug": fixed, "amount": "2", "currency": "USDT", "allowQuantity": True,
            "maxQuantity": 3})).status_code == 201
        assert (await client.request("POST", "/v1/payment-links", {
            "name": "Tip", "slug": custom, "currency": "USDT", "allowCustomAmount": True, "minAmount": "1",
            "maxAmount": "50"})).status_code == 201
        page = await pay_node.http.get(f"/pay/{fixed}")
        assert page.status_code == 200 and "Tea" in page.text
        before = await payment_count(pay_node, merchant_account.merchant_id)
        for path, form in ((fixed, {"quantity": "4"}), (fixed, {"quantity": "0"}), (fixed, {"quantity": "two"}),
                           (custom, {"amount": "0.5"}), (custom, {"amount": "51"}), (custom, {"amount": "abc"}),
                           (custom, {"amount": "5", "quantity": "2"})):
            reply = await pay_node.http.post(f"/pay/{path}", data=form)
            assert reply.status_code == 400, (path, form, reply.status_code)
        assert await payment_count(pay_node, merchant_account.merchant_id) == before
        # a fixed amount ignores what the customer sends; quantity multiplies
        made = await pay_node.http.post(f"/pay/{fixed}", data={"amount": "0.01", "quantity": "3"})
        assert made.status_code == 303 and made.headers["location"].startswith("/checkout/")
        payment_id = uuid.UUID(made.headers["location"].rsplit("/", 1)[1])
        checkout = (await pay_node.http.get(f"/v1/payments/{payment_id}/checkout")).json()["data"]
        assert checkout["amount"] == "6" and checkout["currency"] == "USDT"
        tip = await pay_node.http.post(f"/pay/{custom}", data={"amount": "7.5"})
        assert tip.status_code == 303
        tip_id = tip.headers["location"].rsplit("/", 1)[1]
        assert (await pay_node.http.get(f"/v1/payments/{tip_id}/checkout")).json()["data"]["amount"] == "7.5"

    async def test_usage_counts_when_paid_and_single_use_is_consumed(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        name = slug()
        link = (await client.request("POST", "/v1/payment-links", {
            "name": "Once", "slug": name, "amount": "3", "currency": "USDT", "reusable": False})).json()["data"]
        first = await pay_node.http.post(f"/pay/{name}", data={})
        second = await pay_node.http.post(f"/pay/{name}", data={})  # one open payment at a time
        assert (first.status_code, second.status_code) == (303, 409)
        assert (await link_row(pay_node, link["id"])).usage_count == 0
        await pay_in_full(pay_node, uuid.UUID(first.headers["location"].rsplit("/", 1)[1]), PAYERS[0])
        assert (await link_row(pay_node, link["id"])).usage_count == 1
        gone = await pay_node.http.get(f"/pay/{name}")
        assert gone.status_code == 410
        assert (await pay_node.http.post(f"/pay/{name}", data={})).status_code == 410
        public = await pay_node.http.get(f"/v1/public/payment-links/by-slug/{name}")
        assert public.status_code == 410 and public.json()["error"]["code"] == "CONSUMED"
        got = await client.request("GET", f"/v1/payment-links/{link['id']}")
        assert got.json()["data"]["usageCount"] == 1

    async def test_expiry_is_410_and_the_scheduler_deactivates(self, pay_node: PaymentNode,
                                                               merchant_account: MerchantAccount) -> None:
        client = sdk(pay_node, merchant_account)
        name = slug()
        soon = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        link = (await client.request("POST", "/v1/payment-links", {
            "name": "Sale", "slug": name, "amount": "1", "currency": "USDT", "expireAt": soon})).json()["data"]
        await asyncio.sleep(1.2)
        public = await pay_node.http.get(f"/v1/public/payment-links/by-slug/{name}")
        assert public.status_code == 410 and public.json()["error"]["code"] == "EXPIRED"
        assert (await pay_node.http.post(f"/pay/{name}", data={})).status_code == 410
        assert await tasks.expire_links(pay_node.resources.db) >= 1
        assert (await link_row(pay_node, link["id"])).status == "INACTIVE"
        assert (await pay_node.http.get(f"/pay/{name}")).status_code == 410


class TestCheckoutSessions:
    async def test_url_escaping_status_and_ids(self, pay_node: PaymentNode,
                                               merchant_account: MerchantAccount) -> None:
        await pay_node.set_rate("300")  # another test module may have moved it
        client = sdk(pay_node, merchant_account)
        ok = "https://shop.example/thank you?order=1&x=a/b~c_d.e-f"
        cancel = "https://shop.example/cart?cancel=1"
        both = (await client.request("POST", "/v1/sdk/checkout/sessions", {
            "amount": "1500", "successUrl": ok, "cancelUrl": cancel})).json()["data"]
        assert both["id"] == f"cs_{both['paymentId']}" and both["status"] == "open" and both["currency"] == "LKR"
        assert both["merchantTradeNo"].startswith("cs_") and len(both["merchantTradeNo"]) == 11
        assert both["url"] == (
            f"{pay_node.url}/checkout/{both['paymentId']}"
            "?successUrl=https%3A%2F%2Fshop.example%2Fthank+you%3Forder%3D1%26x%3Da%2Fb~c_d.e-f"
            "&cancelUrl=https%3A%2F%2Fshop.example%2Fcart%3Fcancel%3D1")
        assert both["successUrl"] == ok and both["cancelUrl"] == cancel and both["exchangeRate"] == "300"
        only_cancel = (await client.request("POST", "/v1/sdk/checkout/sessions", {
            "amount": "10", "currency": "USDT", "cancelUrl": cancel})).json()["data"]
        assert only_cancel["url"] == f"{pay_node.url}/checkout/{only_cancel['paymentId']}"
        assert only_cancel["cancelUrl"] == cancel and only_cancel["successUrl"] == ""
        missing = await client.request("POST", "/v1/sdk/checkout/sessions", {"amount": ""})
        assert missing.status_code == 400 and missing.json()["error"] == {
            "code": "VALIDATION_ERROR", "message": "amount is required"}
        page = await pay_node.http.get(both["url"].removeprefix(pay_node.url))
        assert page.status_code == 200


class TestMerchantRest:
    async def test_filters_search_pagination_csv_and_branches(self, pay_node: PaymentNode,
                                                              resources: Resources) -> None:
        account = await make_merchant(resources)
        client = sdk(pay_node, account)
        branch = await pay_node.http.post("/v1/branches", json={"name": "Kandy"},
                                          headers={**account.auth_headers, "X-Openpay-Mode": "test"})
        assert branch.status_code == 201, branch.text
        branch_id = branch.json()["data"]["id"]
        made = []
        for trade, email, extra in (("ALPHA-1", "a@x.example", {}), ("beta-2", "b@x.example", {}),
                                    ("=HYPERLINK(1)", "c@x.example", {"branchId": branch_id})):
            reply = await client.create_payment(amount="2", merchantTradeNo=trade, customerEmail=email, **extra)
            assert reply.status_code == 201, reply.text
            made.append(reply.json()["data"])
        # another merchant cannot file its payments under this merchant's branch
        stranger = await make_merchant(resources)
        refused = await sdk(pay_node, stranger).create_payment(amount="2", branchId=branch_id)
        assert refused.status_code == 400 and "branchId" in refused.json()["error"]["message"], refused.text
        await asyncio.sleep(0.1)

        async def listed(query: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
            reply = await pay_node.http.get(f"/v1/payments{query}", headers=headers or account.auth_headers)
            assert reply.status_code == 200, reply.text
            return reply.json()  # type: ignore[no-any-return]

        everything = await listed("")
        assert everything["meta"]["total"] == 3 and [p["id"] for p in everything["data"]] == [
            p["id"] for p in reversed(made)]
        assert [p["id"] for p in (await listed("?search=alpha"))["data"]] == [made[0]["id"]]
        assert [p["id"] for p in (await listed("?search=B%40X.EXAMPLE"))["data"]] == [made[1]["id"]]
        assert (await listed("?status=INITIATED"))["meta"]["total"] == 3
        assert (await listed("?status=PAID"))["meta"]["total"] == 0
        second = await listed("?page=2&perPage=2")
        assert second["meta"] == {"total": 3, "page": 2, "perPage": 2} and len(second["data"]) == 1
        future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (await listed(f"?dateFrom={future}"))["meta"]["total"] == 0
        assert (await listed(f"?branchId={branch_id}"))["meta"]["total"] == 1
        for bad in ("?status=NOPE", "?dateFrom=yesterday", "?page=x", "?branchId=1"):
            reply = await pay_node.http.get(f"/v1/payments{bad}", headers=account.auth_headers)
            assert reply.status_code == 400, bad

        exported = await pay_node.http.get("/v1/payments/export.csv", headers=account.auth_headers)
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert rows[0][:4] == ["paymentNo", "id", "createdAt", "status"] and len(rows) == 4
        trade_col = rows[0].index("merchantTradeNo")
        assert sorted(r[trade_col] for r in rows[1:]) == ["'=HYPERLINK(1)", "ALPHA-1", "beta-2"]

        # a branch-scoped user sees only that branch: list, CSV, single payment
        user = await add_user(resources, account, role="USER", branch_id=uuid.UUID(branch_id))
        scoped = await listed("", headers=user.auth_headers)
        assert [p["id"] for p in scoped["data"]] == [made[2]["id"]]
        assert (await listed(f"?branchId={uuid.uuid4()}", headers=user.auth_headers))["meta"]["total"] == 1
        scoped_csv = await pay_node.http.get("/v1/payments/export.csv", headers=user.auth_headers)
        assert len(list(csv.reader(io.StringIO(scoped_csv.text)))) == 2
        other = await pay_node.http.get(f"/v1/payments/{made[0]['id']}", headers=user.auth_headers)
        assert other.status_code == 404


class TestExport:
    async def test_the_csv_has_every_payment_once_newest_first(self, pay_node: PaymentNode,
                                                             resources: Resources) -> None:
        account = await make_merchant(resources)
        first = (await sdk(pay_node, account).create_payment(amount="2", merchantTradeNo="SEED")).json()["data"]
        await asyncio.sleep(0.1)
        # 2,500 more rows of the same merchant (copies with their own unique fields), an hour apart
        async with resources.db.unit_of_work() as session:
            await session.execute(text("""
                INSERT INTO payments.payments SELECT (jsonb_populate_record(p, jsonb_build_object(
                    'id', gen_random_uuid(), 'payment_no', 'PAY-X-' || n, 'provider_pay_id', 'mock_x' || n,
                    'onchain_id', '\\x' || encode(sha256(convert_to(p.id::text || n, 'UTF8')), 'hex'),
                    'deposit_address', '0x' || substr(md5(p.id::text || n), 1, 40),
                    'merchant_trade_no', 'COPY-' || n,
                    'created_at', p.created_at - make_interval(hours => n)))).*
                FROM payments.payments p, generate_series(1, 2500) n WHERE p.id = :id"""), {"id": first["id"]})
        exported = await pay_node.http.get("/v1/payments/export.csv", headers=account.auth_headers)
        assert exported.status_code == 200, exported.text
        rows = list(csv.reader(io.StringIO(exported.text)))
        header, body = rows[0], rows[1:]
        trades = [r[header.index("merchantTradeNo")] for r in body]
        assert len(body) == 2501 and len({r[header.index("id")] for r in body}) == 2501
        assert trades == ["SEED", *(f"COPY-{n}" for n in range(1, 2501))]


class TestRiskScoring:
    async def test_every_rule_from_real_inputs_and_critical_blocks(self, pay_node: PaymentNode,
                                                                   resources: Resources) -> None:
        account = await make_merchant(resources)
        client = sdk(pay_node, account)
        email = f"{uuid.uuid4().hex[:8]}@buyer.example"
        flags_at: dict[int, list[str]] = {}
        for n in range(21):  # n earlier payments of this customer
            reply = await client.create_payment(amount="1", currency="USDT", customerEmail=email)
            assert reply.status_code == 201, reply.text
            flags_at[n] = reply.json()["data"].get("riskFlags", [])
        assert flags_at[0] == [] and flags_at[4] == []
        assert flags_at[5] == ["VELOCITY_HOUR"] and flags_at[9] == ["VELOCITY_HOUR"]
        assert flags_at[10] == ["VELOCITY_HOUR_HIGH"]
        assert flags_at[20] == ["VELOCITY_HOUR_HIGH", "VELOCITY_DAY"]

        # the merchant's recent average is 1 USDT
        three_x = (await client.create_payment(amount="4", customerEmail="known-" + email)).json()["data"]
        assert three_x["riskFlags"] == ["AMOUNT_3X_AVERAGE"] and three_x["riskScore"] == 10
        medium = (await client.create_payment(amount="6000", customerEmail="new-" + email)).json()["data"]
        assert medium["riskFlags"] == ["NEW_CUSTOMER_LARGE_AMOUNT", "AMOUNT_5X_AVERAGE", "MEDIUM_AMOUNT"]
        assert medium["riskScore"] == 50

        before = await payment_count(pay_node, account.merchant_id)
        blocked = await client.create_payment(amount="60000", customerEmail="whale-" + email)
        assert blocked.status_code == 422
        error = blocked.json()["error"]
        assert error["code"] == "RISK_BLOCKED" and "DAILY_VOLUME" in error["message"]
        assert "LARGE_AMOUNT" in error["message"] and "score 80" in error["message"]
        assert await payment_count(pay_node, account.merchant_id) == before


class TestLiveMode:
    async def test_live_keys_need_kyc_and_instant_access_has_a_cap(self, pay_node: PaymentNode,
                                                                   resources: Resources) -> None:
        pending = await make_merchant(resources, kyc="PENDING")
        refused = await sdk(pay_node, pending, "live").create_payment(amount="5")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "LIVE_MODE_NOT_ALLOWED"
        assert (await sdk(pay_node, pending, "test").create_payment(amount="5")).status_code == 201
        assert await payment_count(pay_node, pending.merchant_id) == 1

        instant = await make_merchant(resources, kyc="INSTANT_ACCESS")
        live = sdk(pay_node, instant, "live")
        cap = pay_node.settings.instant_access_cap_usdt
        first = await live.create_payment(amount=str(cap - 100))
        assert first.status_code == 201 and first.json()["data"]["mode"] == "live"
        over = await live.create_payment(amount="200")
        assert over.status_code == 403 and over.json()["error"]["code"] == "INSTANT_ACCESS_LIMIT"
        assert (await live.create_payment(amount="100")).status_code == 201  # exactly the cap
        assert (await sdk(pay_node, instant, "test").create_payment(amount="200")).status_code == 201
        assert await payment_count(pay_node, instant.merchant_id) == 3

        approved = await make_merchant(resources, kyc="APPROVED")
        assert (await sdk(pay_node, approved, "live").create_payment(amount=str(cap + 1))).status_code == 201
