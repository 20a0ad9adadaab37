"""The SDK wire protocol end to end: create through the HMAC route, pay on anvil, the indexer
moves the payment, the SDK reads PAID with the right tx hash, fees and LKR amounts."""

from __future__ import annotations

import asyncio
import re
import uuid
from decimal import Decimal

from sqlalchemy import select

from chain.intents import fixed_to_rate
from node.bus import OutboxMessage
from node.payments.models import Payment
from tests.api.sdk_client import SdkClient, signature
from tests.fixtures.accounts import MerchantAccount
from tests.fixtures.contracts import PAYERS, UNIT
from tests.fixtures.payments import PaymentNode

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def sdk(node: PaymentNode, account: MerchantAccount) -> SdkClient:
    return SdkClient(node.http, account.sdk_credential("test"))


async def events_for(node: PaymentNode, payment_id: str) -> list[OutboxMessage]:
    async with node.resources.db.unit_of_work() as session:
        return list((await session.execute(select(OutboxMessage).where(OutboxMessage.key == payment_id)
                                           .order_by(OutboxMessage.id))).scalars())


async def row(node: PaymentNode, payment_id: str) -> Payment:
    # the request's transaction commits just after its response is sent: wait for the row
    for _ in range(100):
        async with node.resources.db.unit_of_work() as session:
            payment = await session.get(Payment, uuid.UUID(payment_id))
        if payment is not None:
            return payment
        await asyncio.sleep(0.02)
    raise AssertionError("payment not stored")


class TestSpecVectors:
    def test_signatures_match_the_spec(self) -> None:
        assert signature("sk_live_test", "1700000000000", "GET", "/v1/payments", b"") == (
            "261f9c21170ae0adf7d59ce49bfe2990659729e728285dccd90a6a7855820bff")
        secret = "sk_test_" + "0123456789abcdef" * 4
        assert signature(secret, "1700000000000", "POST", "/v1/sdk/payments",
                         b'{"amount":"100.00","currency":"USDT"}') == (
            "88a570ac9d4f9b74b33ac2e156580c865482a47895e64a8504e42980ace48586")


class TestCreate:
    async def test_usdt_payment_has_the_wire_shape(self, pay_node: PaymentNode, merchant_account: MerchantAccount
                                                   ) -> None:
        reply = await sdk(pay_node, merchant_account).create_payment(
            amount="100.00", currency="USDT", merchantTradeNo="ORDER-1", customerEmail="a@example.com",
            successURL="https://shop.example/ok", cancelUrl="https://shop.example/cancel")
        assert reply.status_code == 201, reply.text
        data = reply.json()["data"]
        assert data["amount"] == "100" and data["amountUsdt"] == "100" and data["currency"] == "USDT"
        assert re.fullmatch(r"PAY-\d{8}-[0-9a-f]{8}", data["paymentNo"])
        assert re.fullmatch(r"mock_[0-9a-f]{12}", data["providerPayId"])
        assert data["status"] == "INITIATED" and data["txHash"] == "" and "paidAt" not in data
        assert RFC3339.match(data["expireTime"]) and RFC3339.match(data["createdAt"])
        assert data["successUrl"] == "https://shop.example/ok" and data["cancelUrl"] == "https://shop.example/cancel"
        assert data["feeBreakdown"] == {
            "grossAmountUSDT": "100", "exchangeFeePercentage": "0.5", "exchangeFeeAmountUSDT": "0.5",
            "ceypayFeePercentage": "1.5", "ceypayFeeAmountUSDT": "1.5", "totalFeesUSDT": "2", "netAmountUSDT": "98"}
        assert data["qrContent"].startswith(f"ethereum:{pay_node.chain.deployment.token.lower()}@")
        assert data["checkoutLink"] == f"{pay_node.url}/checkout/{data['id']}"

    async def test_lkr_payment_converts_at_the_locked_rate(self, pay_node: PaymentNode,
                                                           merchant_account: MerchantAccount) -> None:
        reply = await sdk(pay_node, merchant_account).create_payment(amount="1500", currency="LKR")
        data = reply.json()["data"]
        assert reply.status_code == 201
        assert data["exchangeRate"] == "300" and data["amountUsdt"] == "5"
        fees = data["feeBreakdown"]
        assert fees["grossAmountLKR"] == "1500" and fees["exchangeFeeAmountLKR"] == "7.5"
        assert fees["ceypayFeeAmountLKR"] == "22.5" and fees["totalFeesLKR"] == "30" and fees["netAmountLKR"] == "1470"

    async def test_bad_input_gets_the_spec_codes_and_stores_nothing(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        cases = [
            ({"amount": "abc"}, "INVALID_AMOUNT", "amount must be a valid number"),
            ({"amount": "-5"}, "VALIDATION_ERROR", "invalid payment data: amount must be positive"),
            ({"amount": "10", "currency": "EUR"}, "VALIDATION_ERROR", "invalid payment data: unsupported currency EUR"),
            ({}, "INVALID_AMOUNT", "amount must be a valid number"),
        ]
        before = (await client.request("GET", "/v1/sdk/payments")).json()["meta"]["total"]
        for body, code, message in cases:
            reply = await client.create_payment(**body)
            assert reply.status_code == 400, body
            assert reply.json() == {"error": {"code": code, "message": message}}
        bad = await client.request("POST", "/v1/sdk/payments", raw=b'{"amount":')
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_JSON"
        assert (await client.request("GET", "/v1/sdk/payments")).json()["meta"]["total"] == before

    async def test_idempotency_key_replays_and_conflicts(self, pay_node: PaymentNode,
                                                         merchant_account: MerchantAccount) -> None:
        client = sdk(pay_node, merchant_account)
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = await client.request("POST", "/v1/sdk/payments", {"amount": "7"}, headers=key)
        again = await client.request("POST", "/v1/sdk/payments", {"amount": "7"}, headers=key)
        other = await client.request("POST", "/v1/sdk/payments", {"amount": "8"}, headers=key)
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert other.status_code == 409

    async def test_get_and_list(self, pay_node: PaymentNode, merchant_account: MerchantAccount,
                                other_merchant_account: MerchantAccount) -> None:
        client = sdk(pay_node, merchant_account)
        created = (await client.create_payment(amount="3", merchantTradeNo="FIND-ME-42")).json()["data"]
        got = await client.get_payment(created["id"])
        # the creation's answer is built from the values inserted, the GET's from the stored row
        assert got.status_code == 200 and got.json()["data"] == created
        full = (await client.create_payment(
            amount="12500.50", currency="LKR", merchantTradeNo="FULL-1", customerEmail="buyer@example.com",
            customerBilling={"firstName": "Nimal", "city": "Kandy"}, goods=[{"name": "Tea", "mccCode": "5499"}],
            description="two kilos", successURL="https://shop.example/ok", cancelURL="https://shop.example/no",
            expiresInMinutes=30)).json()["data"]
        assert (await client.get_payment(full["id"])).json()["data"] == full
        assert (await client.get_payment("nope")).json()["error"]["code"] == "INVALID_ID"
        assert (await client.get_payment(str(uuid.uuid4()))).status_code == 404
        foreign = await sdk(pay_node, other_merchant_account).get_payment(created["id"])
        assert foreign.status_code == 403 and foreign.json()["error"]["message"] == (
            "cannot access another merchant's payment")
        listed = (await client.request("GET", "/v1/sdk/payments?search=find-me&perPage=500")).json()
        assert [p["id"] for p in listed["data"]] == [created["id"]]
        assert listed["meta"] == {"total": 1, "page": 1, "perPage": 500}


class TestPaidThroughTheIndexer:
    async def test_wallet_pay_reaches_paid_with_the_locked_rate(self, pay_node: PaymentNode,
                                                                merchant_account: MerchantAccount) -> None:
        client = sdk(pay_node, merchant_account)
        data = (await client.create_payment(amount="3000", currency="LKR")).json()["data"]
        await pay_node.set_rate("350")  # a rate change after creation changes nothing due
        payment = await row(pay_node, data["id"])
        chain = pay_node.chain.chain
        payer = PAYERS[0]
        chain.fund(payer, 100 * UNIT)
        from node.payments.service import intent_of

        receipt = chain.pay(payer, intent_of(payment), bytes(payment.signature))
        await pay_node.sync()
        paid = (await client.get_payment(data["id"])).json()["data"]
        assert paid["status"] == "PAID" and paid["txHash"] == receipt["transactionHash"]
        assert RFC3339.match(paid["paidAt"]) and paid["amountUsdt"] == "10"
        event = next(e for e in chain.events(receipt) if type(e).__name__ == "PaymentReceived")
        assert event.fiat_amount == 300_000 and fixed_to_rate(event.rate) == Decimal(300)  # type: ignore[attr-defined]
        assert event.fee == 2 * 10**17  # type: ignore[attr-defined]
        types = [e.type for e in await events_for(pay_node, data["id"])]
        assert types == ["payment.initiated", "payment.pending", "payment.paid"] or types == [
            "payment.initiated", "payment.paid"]
        last = (await events_for(pay_node, data["id"]))[-1].payload
        assert last["merchantId"] == str(merchant_account.merchant_id) and last["mode"] == "test"
        assert last["status"] == "PAID"

    async def test_transfers_to_the_deposit_address(self, pay_node: PaymentNode,
                                                    merchant_account: MerchantAccount) -> None:
        client = sdk(pay_node, merchant_account)
        chain = pay_node.chain.chain
        payer = PAYERS[1]
        chain.fund(payer, 100 * UNIT)
        results = {}
        for label, sent in (("exact", 4 * UNIT), ("under", 3 * UNIT), ("over", 5 * UNIT)):
            data = (await client.create_payment(amount="4")).json()["data"]
            chain.transact(payer, "MockUSDT", "transfer", data["depositAddress"], sent)
            results[label] = data["id"]
        await pay_node.sync()
        states = {label: (await row(pay_node, pid)).status for label, pid in results.items()}
        assert states == {"exact": "paid", "under": "underpaid", "over": "overpaid"}
        over = (await client.get_payment(results["over"])).json()["data"]
        assert over["status"] == "PAID" and over["receivedUsdt"] == "5"
        under = (await client.get_payment(results["under"])).json()["data"]
        assert under["status"] == "USER_REVIEW"

    async def test_simulate_and_callback(self, pay_node: PaymentNode, merchant_account: MerchantAccount) -> None:
        client = sdk(pay_node, merchant_account)
        data = (await client.create_payment(amount="2")).json()["data"]
        simulated = await pay_node.http.post(f"/test/simulate/{data['providerPayId']}")
        assert simulated.json() == {"data": {"status": "simulated", "providerPayId": data["providerPayId"]}}
        await pay_node.sync()
        callback = await pay_node.http.post(f"/v1/payments/{data['id']}/callback")
        assert callback.json() == {"data": {"status": "processed"}}
        checkout = (await pay_node.http.get(f"/v1/payments/{data['id']}/checkout")).json()["data"]
        assert checkout["status"] == "PAID" and checkout["txHash"].startswith("0x")
