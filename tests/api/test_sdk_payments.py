"""The SDK wire protocol end to end: create through the HMAC route, pay on anvil, the indexer
moves the payment, the SDK reads PAID with the right tx hash, fees and LKR amounts."""

from __future__ import annotations

import asyncio
import json
import re
import struct
import uuid
import zlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_CEILING, Decimal
from xml.etree import ElementTree

import segno
from sqlalchemy import select

from chain.intents import fixed_to_rate
from node.bus import OutboxMessage
from node.money import to_base_units
from node.payments.models import Payment
from node.payments.service import intent_of
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


def eip681(node: PaymentNode, payment: Payment) -> str:
    """The URI a wallet reads, spelled out: token@chain, the transfer to the deposit, base units."""
    return (f"ethereum:{node.chain.deployment.token.lower()}@{node.chain.chain_id}/transfer"
            f"?address={payment.deposit_address}&uint256={int(payment.amount_units)}")


def png_modules(png: bytes, scale: int, border: int) -> list[list[bool]]:
    """The dark modules of a 1-bit grayscale PNG QR code (segno's), read back from its pixels."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(png):
        (length,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        chunks[kind] = chunks.get(kind, b"") + png[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(png[pos + 4:pos + 8 + length]) == crc
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, color) == (1, 0) and b"IEND" in chunks
    stride, raw, rows, previous = (width + 7) // 8, zlib.decompress(chunks[b"IDAT"]), [], bytes((width + 7) // 8)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left, up, corner = (line[i - 1] if i else 0), previous[i], (previous[i - 1] if i else 0)
            guess = left + up - corner
            paeth = min((abs(guess - left), left), (abs(guess - up), up), (abs(guess - corner), corner),
                        key=lambda t: t[0])[1]
            line[i] = (line[i] + (0, left, up, (left + up) // 2, paeth)[kind]) & 0xFF
        rows.append(bytes(line))
        previous = bytes(line)
    size = width // scale - 2 * border
    pixel = lambda x, y: not (rows[y][x // 8] >> (7 - x % 8)) & 1  # noqa: E731 (0 is black)
    return [[pixel((c + border) * scale + scale // 2, (r + border) * scale + scale // 2) for c in range(size)]
            for r in range(size)]


def svg_modules(svg: bytes, border: int) -> list[list[bool]]:
    """The dark modules of segno's SVG: one path of horizontal runs (``M x y``, ``h n``, ``m dx dy``)."""
    root = ElementTree.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    tokens = re.findall(r"[Mmh]|-?\d+(?:\.\d+)?", path.attrib["d"])
    x = y = 0.0
    dark: set[tuple[int, int]] = set()
    i = 0
    while i < len(tokens):
        op = tokens[i]
        if op == "h":
            n = int(float(tokens[i + 1]))
            dark.update((int(y), int(x) + k) for k in range(n))
            x += n
            i += 2
        else:
            dx, dy = float(tokens[i + 1]), float(tokens[i + 2])
            x, y = (dx, dy) if op == "M" else (x + dx, y + dy)
            i += 3
    size = int(root.attrib["width"]) // 6 - 2 * border
    return [[(r + border, c + border) in dark for c in range(size)] for r in range(size)]


def qr_modules(content: str) -> list[list[bool]]:
    return [[bool(v) for v in row] for row in segno.make(content, error="m").matrix]


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


    async def test_any_text_is_stored_and_announced_as_sent(self, pay_node: PaymentNode,
                                                           merchant_account: MerchantAccount) -> None:
        """A new payment travels to PostgreSQL as JSON: quotes, backslashes, text that looks like an
        escape, control characters and any script come back as they were sent."""
        client = sdk(pay_node, merchant_account)
        tricky = 'say "hi" \\ \\x41 \\u0041 %s $1 \n\t ශ්‍රී ලංකා 🍵 </script> \u2028'
        created = (await client.create_payment(
            amount="0.000001", merchantTradeNo='T-"1"\\', customerEmail="Ünïcode@Example.com", description=tricky,
            customerBilling={"firstName": tricky, "city": "Kandy"}, goods=[{"name": tricky, "mccCode": "5499"}],
        )).json()["data"]
        assert created["merchantTradeNo"] == 'T-"1"\\' and created["amountUsdt"] == "0.000001"
        assert created["customerBilling"]["firstName"] == tricky and created["goods"][0]["name"] == tricky
        assert created["customerEmail"] == "ünïcode@example.com"
        assert (await client.get_payment(created["id"])).json()["data"] == created
        stored = await row(pay_node, created["id"])
        assert stored.description == tricky.strip() and stored.amount_units == 10**12
        (announced,) = [m for m in await events_for(pay_node, created["id"]) if m.type == "payment.initiated"]
        assert announced.payload == created

    async def test_default_expiry_is_15_minutes_and_order_expire_time_is_the_deadline(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        plain = (await client.create_payment(amount="2")).json()["data"]
        created = datetime.fromisoformat(plain["createdAt"])
        assert datetime.fromisoformat(plain["expireTime"]) - created == timedelta(minutes=15)
        wanted = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
        ordered = await client.create_payment(amount="2", orderExpireTime=wanted.strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert ordered.status_code == 201, ordered.text
        data = ordered.json()["data"]
        assert data["expireTime"] == wanted.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert int((await row(pay_node, data["id"])).deadline) == int(wanted.timestamp())  # what the chain enforces
        colombo = timezone(timedelta(hours=5, minutes=30))
        offset = (wanted + timedelta(hours=1)).astimezone(colombo).isoformat()  # an hour later, in +05:30
        other = (await client.create_payment(amount="2", orderExpireTime=offset)).json()["data"]
        assert other["expireTime"] == (wanted + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        past = await client.create_payment(amount="2", orderExpireTime="2020-01-01T00:00:00Z")
        assert past.status_code == 400 and past.json()["error"]["code"] == "VALIDATION_ERROR"

    async def test_the_eip681_uri_and_the_qr_images_carry_the_payment(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        first = (await client.create_payment(amount="12.5")).json()["data"]
        second = (await client.create_payment(amount="3")).json()["data"]
        payment = await row(pay_node, first["id"])
        uri = eip681(pay_node, payment)
        assert uri.endswith(f"&uint256={125 * 10**17}") and payment.deposit_address == first["depositAddress"]
        assert re.fullmatch(r"ethereum:0x[0-9a-f]{40}@\d+/transfer\?address=0x[0-9a-f]{40}&uint256=\d+", uri)
        assert first["qrContent"] == first["deepLink"] == uri
        checkout = (await pay_node.http.get(f"/v1/payments/{first['id']}/checkout")).json()["data"]
        assert checkout["qrContent"] == uri
        images = {}
        for data in (first, second):
            png = await pay_node.http.get(f"/checkout/{data['id']}/qr.png")
            svg = await pay_node.http.get(f"/checkout/{data['id']}/qr.svg")
            assert png.headers["content-type"] == "image/png" and svg.headers["content-type"].startswith(
                "image/svg+xml")
            images[data["id"]] = (png.content, svg.content)
            expected = qr_modules(data["qrContent"])
            assert png_modules(png.content, scale=8, border=2) == expected
            assert svg_modules(svg.content, border=2) == expected
        assert images[first["id"]] != images[second["id"]]
        assert (await pay_node.http.get(f"/checkout/{uuid.uuid4()}/qr.png")).status_code == 404

    async def test_rest_create_over_jwt_and_hmac(self, pay_node: PaymentNode,
                                                 merchant_account: MerchantAccount) -> None:
        body = {"amount": "1500", "currency": "LKR", "merchantTradeNo": "REST-1"}
        over_jwt = await pay_node.http.post("/v1/payments", json=body,
                                            headers={**merchant_account.auth_headers, "X-Openpay-Mode": "test"})
        raw = json.dumps(body).encode()
        over_hmac = await pay_node.http.post(
            "/v1/payments", content=raw,
            headers={**merchant_account.signed("POST", "/v1/payments", raw), "Content-Type": "application/json"})
        for reply in (over_jwt, over_hmac):
            assert reply.status_code == 201, reply.text
            data = reply.json()["data"]
            assert data["merchantId"] == str(merchant_account.merchant_id) and data["status"] == "INITIATED"
            assert data["amountUsdt"] == "5" and data["amountLkr"] == "1500" and data["mode"] == "test"
            assert data["qrContent"] == eip681(pay_node, await row(pay_node, data["id"]))
        assert over_jwt.json()["data"]["id"] != over_hmac.json()["data"]["id"]
        unsigned = await pay_node.http.post("/v1/payments", json=body)
        assert unsigned.status_code == 401


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
        receipt = chain.pay(payer, intent_of(payment), bytes(payment.signature))
        await pay_node.sync()
        paid = (await client.get_payment(data["id"])).json()["data"]
        assert paid["status"] == "PAID" and paid["txHash"] == receipt["transactionHash"]
        assert RFC3339.match(paid["paidAt"]) and paid["amountUsdt"] == "10" and paid["receivedUsdt"] == "10"
        assert paid["amountLkr"] == "3000" and paid["exchangeRate"] == "300" and paid["payer"] == payer.lower()
        assert paid["feeBreakdown"] == {
            "grossAmountUSDT": "10", "exchangeFeePercentage": "0.5", "exchangeFeeAmountUSDT": "0.05",
            "ceypayFeePercentage": "1.5", "ceypayFeeAmountUSDT": "0.15", "totalFeesUSDT": "0.2",
            "netAmountUSDT": "9.8", "grossAmountLKR": "3000", "exchangeFeeAmountLKR": "15",
            "ceypayFeeAmountLKR": "45", "totalFeesLKR": "60", "netAmountLKR": "2940"}
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
        await pay_node.set_rate("300")  # whatever an earlier test left
        results, hashes = {}, {}
        for label, sent in (("exact", 4 * UNIT), ("under", 3 * UNIT), ("over", 5 * UNIT)):
            data = (await client.create_payment(amount="4")).json()["data"]
            hashes[label] = chain.transact(payer, "MockUSDT", "transfer", data["depositAddress"], sent)[
                "transactionHash"]
            results[label] = data["id"]
        await pay_node.sync()
        states = {label: (await row(pay_node, pid)).status for label, pid in results.items()}
        assert states == {"exact": "paid", "under": "underpaid", "over": "overpaid"}
        wires = {label: (await client.get_payment(pid)).json()["data"] for label, pid in results.items()}
        assert {label: w["status"] for label, w in wires.items()} == {
            "exact": "PAID", "under": "USER_REVIEW", "over": "PAID"}
        assert {label: w["receivedUsdt"] for label, w in wires.items()} == {"exact": "4", "under": "3", "over": "5"}
        for label, wire in wires.items():
            # fees and LKR are those of the amount due (the payment's price), whatever was sent
            # txHash is "" until paid (spec); the node's lastTxHash names the transaction at once
            assert wire["txHash"] == ("" if label == "under" else hashes[label]), label
            assert wire["lastTxHash"] == hashes[label] and wire["payer"] == payer.lower(), label
            assert wire["amountUsdt"] == "4" and wire["amountLkr"] == "1200", label
            assert wire["feeBreakdown"] == {
                "grossAmountUSDT": "4", "exchangeFeePercentage": "0.5", "exchangeFeeAmountUSDT": "0.02",
                "ceypayFeePercentage": "1.5", "ceypayFeeAmountUSDT": "0.06", "totalFeesUSDT": "0.08",
                "netAmountUSDT": "3.92"}, label
            assert ("paidAt" in wire) == (label != "under"), label

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


    async def test_a_rate_finer_than_the_chain_is_locked_at_the_chain_precision(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        await pay_node.set_rate("301.123456789")
        try:
            lkr = (await client.create_payment(amount="3000", currency="LKR")).json()["data"]
            usdt = (await client.create_payment(amount="1000")).json()["data"]
        finally:
            await pay_node.set_rate("300")
        locked = Decimal("301.12345678")  # 8 decimals, rounded down: what the intent carries
        assert lkr["exchangeRate"] == "301.12345678"
        due = to_base_units((Decimal(3000) / locked).quantize(Decimal("0.0001"), rounding=ROUND_CEILING))
        payment = await row(pay_node, lkr["id"])
        assert payment.rate == locked and int(payment.amount_units) == due and payment.fiat_cents == 300_000
        assert (await row(pay_node, usdt["id"])).rate == locked
        assert usdt["amountLkr"] == "301123.46"  # 1000 x 301.12345678, to the cent
        chain = pay_node.chain.chain
        chain.fund(PAYERS[2], due)
        receipt = chain.pay(PAYERS[2], intent_of(payment), bytes(payment.signature))
        event = next(e for e in chain.events(receipt) if type(e).__name__ == "PaymentReceived")
        assert fixed_to_rate(event.rate) == payment.rate  # type: ignore[attr-defined]
        assert event.fiat_amount == payment.fiat_cents and event.amount == payment.amount_units  # type: ignore[attr-defined]
        await pay_node.sync()
        assert (await client.get_payment(lkr["id"])).json()["data"]["status"] == "PAID"
