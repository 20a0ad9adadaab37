"""The public side of a payment: the test chain's simulated customer and the callback (the spec's
test amounts, the confirmation depth mined, the callback waiting for the indexer, a repeated
callback), the checkout status poll's own rate limit, and what the checkout page offers
(stored redirects only, chain parameters, LKR)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import select, text, update

from api.routes.payments import add_chain_params, lkr_text, redirect_url
from node.bus import OutboxMessage
from node.payments.models import Payment
from tests.api.sdk_client import SdkClient
from tests.fixtures.accounts import MerchantAccount
from tests.fixtures.payments import PaymentNode, indexing, same_node, serving

DEPTH = 3


@pytest_asyncio.fixture(scope="module")
async def deep_node(pay_node: PaymentNode) -> AsyncIterator[httpx.AsyncClient]:
    """The same node (database, chain) as a second app whose indexer finality is a depth of
    ``DEPTH`` blocks, as on a real chain (the test indexer takes every block as final)."""
    async with serving(*same_node(pay_node, indexer_confirmations=DEPTH)) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


@pytest_asyncio.fixture
async def indexed(pay_node: PaymentNode) -> AsyncIterator[None]:
    async with indexing(pay_node):
        yield


async def _create(node: PaymentNode, account: MerchantAccount, **body: Any) -> dict[str, Any]:
    reply = await SdkClient(node.http, account.sdk_credential("test")).create_payment(**body)
    assert reply.status_code == 201, reply.text
    return reply.json()["data"]  # type: ignore[no-any-return]


async def _get(node: PaymentNode, account: MerchantAccount, payment_id: str) -> dict[str, Any]:
    reply = await SdkClient(node.http, account.sdk_credential("test")).get_payment(payment_id)
    return reply.json()["data"]  # type: ignore[no-any-return]


async def _events(node: PaymentNode, payment_id: str) -> list[str]:
    """The payment's announced events, oldest first (``expired`` for ``payment.expired``)."""
    async with node.resources.db.unit_of_work() as session:
        types = (await session.execute(select(OutboxMessage.type).where(OutboxMessage.key == payment_id)
                                       .order_by(OutboxMessage.id))).scalars()
        return [t.removeprefix("payment.") for t in types if t.startswith("payment.")]


class TestSimulatedOutcomes:
    async def test_0_01_usdt_ends_expired_and_nothing_is_sent(self, pay_node: PaymentNode,
                                                              merchant_account: MerchantAccount) -> None:
        data = await _create(pay_node, merchant_account, amount="0.01", currency="USDT")
        simulated = await pay_node.http.post(f"/test/simulate/{data['providerPayId']}")
        assert simulated.json() == {"data": {"status": "simulated", "providerPayId": data["providerPayId"]}}
        callback = await pay_node.http.post(f"/v1/payments/{data['id']}/callback")
        assert callback.json() == {"data": {"status": "processed"}}
        payment = await _get(pay_node, merchant_account, data["id"])
        assert (payment["status"], payment["txHash"], payment["receivedUsdt"]) == ("EXPIRED", "", "0")
        assert (await _events(pay_node, data["id"]))[-1] == "expired"
        assert pay_node.chain.chain.token_balance(data["depositAddress"]) == 0

    async def test_0_02_usdt_underpays_then_fails(self, pay_node: PaymentNode, indexed: None,
                                                  merchant_account: MerchantAccount) -> None:
        data = await _create(pay_node, merchant_account, amount="0.02", currency="USDT")
        await pay_node.http.post(f"/test/simulate/{data['providerPayId']}")
        assert (await pay_node.http.post(f"/v1/payments/{data['id']}/callback")).status_code == 200
        payment = await _get(pay_node, merchant_account, data["id"])
        assert (payment["status"], payment["state"], payment["receivedUsdt"]) == ("FAILED", "failed", "0.01")
        assert payment["txHash"] == "" and payment["lastTxHash"].startswith("0x")  # "" until paid
        # through the real states: seen and final underpaid, then failed at the deadline
        kinds = await _events(pay_node, data["id"])
        assert kinds.index("underpaid") < kinds.index("failed")

    async def test_the_simulator_holds_no_database_transaction_while_it_waits(
            self, pay_node: PaymentNode, merchant_account: MerchantAccount) -> None:
        """0.02 waits (callback_wait_s) for the indexer, which is not running here: meanwhile no
        connection of the pool sits idle in a transaction (a few calls at once would take the pool)."""
        data = await _create(pay_node, merchant_account, amount="0.02", currency="USDT")
        task = asyncio.ensure_future(pay_node.http.post(f"/test/simulate/{data['providerPayId']}"))
        try:
            while pay_node.chain.chain.token_balance(data["depositAddress"]) == 0:
                assert not task.done(), task.result().text
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)
            assert not task.done()
            async with pay_node.resources.db.unit_of_work() as session:
                held = (await session.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state = 'idle in transaction' AND now() - state_change > interval '1 second'"))).scalar_one()
            assert held == 0
        finally:
            assert (await task).status_code == 200
        await pay_node.sync()

    async def test_another_amount_is_paid_and_final_when_the_callback_answers(
            self, pay_node: PaymentNode, deep_node: httpx.AsyncClient, merchant_account: MerchantAccount) -> None:
        data = await _create(pay_node, merchant_account, amount="3", currency="USDT")
        await deep_node.post(f"/test/simulate/{data['providerPayId']}")
        transfers = _token_transfers(pay_node, data["depositAddress"])
        assert len(transfers) == 1
        # the confirmation depth was mined on top of the payment
        assert int(pay_node.chain.chain.rpc_call("eth_blockNumber"), 16) - transfers[0] >= DEPTH

        stop = asyncio.Event()

        async def late_indexer() -> None:  # the indexer catches up only after the callback came in
            await asyncio.sleep(1.0)
            while not stop.is_set():
                await pay_node.sync()
                await asyncio.sleep(0.1)

        task = asyncio.ensure_future(late_indexer())
        try:
            callback = await deep_node.post(f"/v1/payments/{data['id']}/callback")
            assert callback.json() == {"data": {"status": "processed"}}
            payment = await _get(pay_node, merchant_account, data["id"])
            assert (payment["status"], payment["receivedUsdt"]) == ("PAID", "3")
        finally:
            stop.set()
            await task

    async def test_a_repeated_callback_on_a_closed_payment_is_refused(
            self, pay_node: PaymentNode, merchant_account: MerchantAccount) -> None:
        data = await _create(pay_node, merchant_account, amount="0.01", currency="USDT")
        await pay_node.http.post(f"/test/simulate/{data['providerPayId']}")
        first = await pay_node.http.post(f"/v1/payments/{data['id']}/callback")
        again = await pay_node.http.post(f"/v1/payments/{data['id']}/callback")
        assert first.json() == {"data": {"status": "processed"}}
        assert again.status_code == 409
        assert again.json() == {"error": {"code": "PAYMENT_CLOSED",
                                          "message": "failed to process callback: the payment is already EXPIRED"}}

    async def test_a_callback_on_an_open_payment_is_processed_every_time(
            self, pay_node: PaymentNode, merchant_account: MerchantAccount) -> None:
        data = await _create(pay_node, merchant_account, amount="5", currency="USDT")
        for _ in range(2):
            reply = await pay_node.http.post(f"/v1/payments/{data['id']}/callback")
            assert reply.json() == {"data": {"status": "processed"}}
        assert (await _get(pay_node, merchant_account, data["id"]))["status"] == "INITIATED"

    async def test_a_callback_expires_only_its_own_payment(self, pay_node: PaymentNode,
                                                           merchant_account: MerchantAccount,
                                                           other_merchant_account: MerchantAccount) -> None:
        mine = await _create(pay_node, merchant_account, amount="5", currency="USDT")
        other = await _create(pay_node, other_merchant_account, amount="5", currency="USDT")
        past = datetime.now(UTC) - timedelta(hours=1)
        async with pay_node.resources.db.unit_of_work() as session:
            await session.execute(update(Payment).where(Payment.id.in_([uuid.UUID(mine["id"]), uuid.UUID(other["id"])]))
                                  .values(expire_at=past))
        assert (await pay_node.http.post(f"/v1/payments/{mine['id']}/callback")).status_code == 200
        assert (await _get(pay_node, merchant_account, mine["id"]))["status"] == "EXPIRED"
        assert (await _get(pay_node, other_merchant_account, other["id"]))["status"] == "INITIATED"

    async def test_a_live_payment_is_not_simulated(self, pay_node: PaymentNode,
                                                   merchant_account: MerchantAccount) -> None:
        reply = await SdkClient(pay_node.http, merchant_account.sdk_credential("live")).create_payment(
            amount="0.01", currency="USDT")
        assert reply.status_code == 201, reply.text
        data = reply.json()["data"]
        simulated = await pay_node.http.post(f"/test/simulate/{data['providerPayId']}")
        assert simulated.status_code == 404
        assert simulated.json()["error"]["code"] == "NOT_FOUND"


def _token_transfers(node: PaymentNode, address: str) -> list[int]:
    """Blocks of the token transfers to ``address``."""
    chain = node.chain.chain
    topic = "0x" + "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    logs = chain.rpc_call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest",
                                           "address": node.chain.deployment.token,
                                           "topics": [topic, None, "0x" + address[2:].lower().rjust(64, "0")]}])
    return [int(entry["blockNumber"], 16) for entry in logs]


class TestStatusPoll:
    async def test_many_checkouts_behind_one_address_are_not_refused(self, pay_node: PaymentNode,
                                                                      merchant_account: MerchantAccount) -> None:
        data = await _create(pay_node, merchant_account, amount="1", currency="USDT")
        # more polls than the 120 a minute every other public route shares per address
        replies = await asyncio.gather(*(pay_node.http.get(f"/v1/payments/{data['id']}/checkout")
                                         for _ in range(150)))
        assert {r.status_code for r in replies} == {200}


class TestCheckoutPage:
    async def test_only_the_stored_redirects_reach_the_page(self, pay_node: PaymentNode,
                                                            merchant_account: MerchantAccount) -> None:
        data = await _create(pay_node, merchant_account, amount="1", currency="USDT",
                             successUrl="https://shop.example/ok", cancelUrl="https://shop.example/no")
        html = (await pay_node.http.get(f"/checkout/{data['id']}",
                                        params={"successUrl": "javascript:alert(1)",
                                                "cancelUrl": "https://evil.example/"})).text
        assert "javascript:alert" not in html and "evil.example" not in html
        config = json.loads(re.search(r'<script id="checkout-config" type="application/json">(.*?)</script>',
                                      html, re.S).group(1))  # type: ignore[union-attr]
        assert (config["successUrl"], config["cancelUrl"]) == ("https://shop.example/ok", "https://shop.example/no")
        assert pay_node.settings.rpc_urls[0] not in html

    def test_redirects_are_absolute_http_urls(self) -> None:
        assert redirect_url("https://shop.example/thanks?o=1") == "https://shop.example/thanks?o=1"
        assert redirect_url("http://127.0.0.1:8000/x") == "http://127.0.0.1:8000/x"
        for bad in ("javascript:alert(1)", "JAVASCRIPT://x%0aalert(1)", "data:text/html,x", "//evil.example",
                    "https:///nohost", "https://shop.example/\nx", "https://shop.example/a b", None, ""):
            assert redirect_url(bad) == "", bad

    def test_bsc_chains_are_offered_with_their_standard_parameters(self, pay_node: PaymentNode) -> None:
        settings = pay_node.settings
        main, test = add_chain_params(56, settings), add_chain_params(97, settings)
        assert main is not None and test is not None
        assert (main["chainId"], main["nativeCurrency"]["decimals"], main["blockExplorerUrls"]) == (
            "0x38", 18, ["https://bscscan.com"])
        assert (test["chainId"], test["nativeCurrency"]["decimals"], test["blockExplorerUrls"]) == (
            "0x61", 18, ["https://testnet.bscscan.com"])
        assert all(url.startswith("https://") for url in main["rpcUrls"] + test["rpcUrls"])
        assert add_chain_params(31337, settings.model_copy(update={"public_rpc_url": None})) is None
        offered = add_chain_params(31337, settings.model_copy(update={"public_rpc_url": "https://rpc.example"}))
        assert offered is not None and offered["rpcUrls"] == ["https://rpc.example"]
        assert offered["chainId"] == "0x7a69"

    def test_lkr_is_formatted_from_cents(self) -> None:
        assert [lkr_text(c) for c in (0, 5, 150_000, 123_456_789)] == ["0.00", "0.05", "1,500.00", "1,234,567.89"]
