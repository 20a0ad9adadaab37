"""Test mode on its own chain: beside a live chain, `ak_test_` payments are made and indexed on the
configured test chain (its own deployment and follower), live ones on the node's chain; without a
test chain a live node refuses test-mode payments instead of taking them on real money."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from pydantic import ValidationError
from sqlalchemy import select, text

from api.app import create_app
from chain.artifacts import Artifacts
from chain.client import RpcClient
from node.config import Settings
from node.payments.models import Payment
from node.resources import Resources
from tests.api.sdk_client import SdkClient
from tests.fixtures.accounts import MerchantAccount, write_high_water
from tests.fixtures.contracts import PAYERS, UNIT
from tests.fixtures.indexing import IndexedChain, start_chain
from tests.fixtures.payments import PaymentNode, payments_follower


@pytest_asyncio.fixture
async def node_with(pay_node: PaymentNode) -> AsyncIterator[object]:
    """``node_with(settings)``: an httpx client on the real app configured with ``settings``."""
    clients: list[httpx.AsyncClient] = []

    def make(settings: Settings) -> httpx.AsyncClient:
        app = create_app(settings, dataclasses.replace(pay_node.resources, settings=settings))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node", timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def live_node_settings(pay_node: PaymentNode, test_chain: IndexedChain | None) -> Settings:
    update: dict[str, object] = {"live_chain_ids": [pay_node.chain.chain_id]}
    if test_chain is not None:
        update |= {"test_rpc_url": test_chain.anvil.url, "test_chain_id": test_chain.chain_id,
                   "test_deployment_file": test_chain.deployment_file}
    return pay_node.settings.model_copy(update=update)


async def stored(pay_node: PaymentNode, payment_id: str) -> Payment:
    async with pay_node.resources.db.unit_of_work() as session:
        payment = (await session.execute(select(Payment).where(Payment.id == uuid.UUID(payment_id)))).scalar_one()
    return payment


class TestSeparateTestChain:
    async def test_test_payments_are_made_and_indexed_on_the_test_chain(
            self, pay_node: PaymentNode, indexed_chain: IndexedChain, merchant_account: MerchantAccount,
            node_with: object) -> None:
        settings = live_node_settings(pay_node, indexed_chain)
        http = node_with(settings)  # type: ignore[operator]
        test = (await SdkClient(http, merchant_account.sdk_credential("test")).create_payment(amount="7")).json()
        live = (await SdkClient(http, merchant_account.sdk_credential("live")).create_payment(amount="7")).json()
        test_payment = await stored(pay_node, test["data"]["id"])
        live_payment = await stored(pay_node, live["data"]["id"])
        assert (test_payment.chain_id, test_payment.mode) == (indexed_chain.chain_id, "test")
        assert (live_payment.chain_id, live_payment.mode) == (pay_node.chain.chain_id, "live")
        assert f"@{indexed_chain.chain_id}/" in test["data"]["qrContent"]
        assert test_payment.token == indexed_chain.deployment.token.lower()

        # the customer pays on the test chain; the test chain's follower sees it, the live one does not
        payer = PAYERS[2]
        indexed_chain.chain.fund(payer, 10 * UNIT)
        indexed_chain.chain.transact(payer, "MockUSDT", "transfer", test_payment.deposit_address, 7 * UNIT)
        await pay_node.sync()
        assert (await stored(pay_node, test["data"]["id"])).status == "initiated"
        test_chain = settings.test_chain()
        assert test_chain is not None and test_chain.chain_id == indexed_chain.chain_id
        rpc = RpcClient(indexed_chain.anvil.url)
        try:
            follower = payments_follower(indexed_chain, test_chain, pay_node.resources, rpc)
            for _ in range(100):
                if not await follower.step():
                    break
        finally:
            await rpc.aclose()
        paid = await stored(pay_node, test["data"]["id"])
        assert paid.status == "paid" and paid.received_final == 7 * UNIT
        assert (await stored(pay_node, live["data"]["id"])).status == "initiated"

    async def test_a_live_chain_without_a_test_chain_refuses_test_payments(
            self, pay_node: PaymentNode, merchant_account: MerchantAccount, node_with: object) -> None:
        http = node_with(live_node_settings(pay_node, None))  # type: ignore[operator]
        water = await write_high_water(pay_node.resources)
        refused = await SdkClient(http, merchant_account.sdk_credential("test")).create_payment(amount="7")
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "TEST_CHAIN_NOT_CONFIGURED" and "OPENPAY_TEST_RPC_URL" in error["message"]
        assert await write_high_water(pay_node.resources) == water
        live = await SdkClient(http, merchant_account.sdk_credential("live")).create_payment(amount="7")
        assert live.status_code == 201, live.text


class TestIndexerRole:
    async def test_the_indexer_role_follows_the_test_chain_beside_its_own(
            self, indexed_chain: IndexedChain, artifacts: Artifacts, migrated: Settings, resources: Resources,
            tmp_path: Path) -> None:
        test_chain = start_chain(artifacts, migrated, tmp_path)
        try:
            indexed_chain.activity(4, seed=3)
            test_chain.activity(4, seed=4)
            heads = {c.chain_id: int(c.chain.rpc.request("eth_blockNumber"), 16) for c in (indexed_chain, test_chain)}
            env = indexed_chain.indexer_env(
                OPENPAY_TEST_RPC_URL=test_chain.anvil.url, OPENPAY_TEST_CHAIN_ID=str(test_chain.chain_id),
                OPENPAY_TEST_DEPLOYMENT_FILE=str(test_chain.deployment_file))
            process = subprocess.Popen([sys.executable, "-m", "node.cli", "run", "indexer"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 60
                while True:
                    async with resources.db.unit_of_work() as session:
                        cursors: dict[int, int] = dict((await session.execute(text(
                            "SELECT chain_id, block_number FROM chain.cursors WHERE chain_id = ANY(:ids)"),
                            {"ids": list(heads)})).all())
                    if all(cursors.get(chain, -1) >= head for chain, head in heads.items()):
                        break
                    assert process.poll() is None, process.stderr.read().decode()[-2000:] if process.stderr else ""
                    assert time.monotonic() < deadline, f"cursors {cursors}, heads {heads}"
                    await asyncio.sleep(0.05)
            finally:
                process.send_signal(signal.SIGTERM)
                assert process.wait(30) == 0
            await indexed_chain.assert_db_equals_chain(resources.db)
            await test_chain.assert_db_equals_chain(resources.db)
        finally:
            test_chain.chain.rpc.close()
            test_chain.anvil.stop()


class TestConfiguration:
    def test_a_test_chain_that_is_the_nodes_own_or_live_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for chain, test in (("56", "56"), ("97", "97"), ("97", "56")):
            monkeypatch.setenv("OPENPAY_CHAIN_ID", chain)
            monkeypatch.setenv("OPENPAY_TEST_CHAIN_ID", test)
            with pytest.raises(ValidationError, match="test chain must be another chain"):
                Settings(_env_file=None)
        monkeypatch.setenv("OPENPAY_CHAIN_ID", "56")
        monkeypatch.setenv("OPENPAY_TEST_CHAIN_ID", "97")
        assert Settings(_env_file=None).test_chain_id == 97
