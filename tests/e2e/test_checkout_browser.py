"""The hosted checkout in headless Chromium: an injected EIP-1193 wallet (an anvil account)
pays, and a plain transfer pays; the page turns PAID from the indexed events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.api.sdk_client import SdkClient
from tests.fixtures.accounts import MerchantAccount
from tests.fixtures.contracts import PAYERS, UNIT
from tests.fixtures.payments import PaymentNode

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install -y chromium")]

# an EIP-1193 provider forwarding to anvil, whose accounts are unlocked
PROVIDER = """
window.ethereum = {
  isMetaMask: false,
  request: async function ({method, params}) {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return [%(account)r];
    if (method === "wallet_switchEthereumChain" || method === "wallet_addEthereumChain") return null;
    const reply = await fetch(%(rpc)r, {method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({jsonrpc: "2.0", id: 1, method: method, params: params || []})});
    const body = await reply.json();
    if (body.error) { const e = new Error(body.error.message); e.code = body.error.code; throw e; }
    return body.result;
  }
};
"""


async def _indexer(node: PaymentNode, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await node.sync()
        await asyncio.sleep(0.2)


async def _checkout(node: PaymentNode, account: MerchantAccount, provider: str = "TEST") -> dict[str, str]:
    client = SdkClient(node.http, account.sdk_credential("test"))
    reply = await client.create_payment(amount="1500", currency="LKR", provider=provider)
    assert reply.status_code == 201, reply.text
    return reply.json()["data"]  # type: ignore[no-any-return]


class TestHostedCheckout:
    async def test_wallet_button_pays_and_the_page_turns_paid(self, pay_node: PaymentNode,
                                                              merchant_account: MerchantAccount) -> None:
        payer = PAYERS[2]
        pay_node.chain.chain.transact(payer, "MockUSDT", "faucet", payer, 100 * UNIT)
        data = await _checkout(pay_node, merchant_account)
        stop = asyncio.Event()
        indexer = asyncio.ensure_future(_indexer(pay_node, stop))
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page(viewport={"width": 390, "height": 844})
                await page.add_init_script(PROVIDER % {"account": payer, "rpc": pay_node.chain.anvil.url})
                await page.goto(data["checkoutLink"])
                assert await page.text_content("#amount-usdt") == data["amountUsdt"]
                await page.click("#pay-wallet")
                await page.wait_for_selector("#status[data-status=PAID]", timeout=30_000)
                await browser.close()
        finally:
            stop.set()
            await indexer

    async def test_plain_transfer_turns_the_page_paid(self, pay_node: PaymentNode,
                                                      merchant_account: MerchantAccount) -> None:
        data = await _checkout(pay_node, merchant_account, provider="BINANCE")
        stop = asyncio.Event()
        indexer = asyncio.ensure_future(_indexer(pay_node, stop))
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page(viewport={"width": 390, "height": 844})
                await page.goto(data["checkoutLink"])
                assert "BSC (BEP20)" in (await page.text_content("#exchange-steps") or "")
                address = await page.text_content("#deposit-address")
                payer = PAYERS[3]
                chain = pay_node.chain.chain
                chain.transact(payer, "MockUSDT", "faucet", payer, 100 * UNIT)
                chain.transact(payer, "MockUSDT", "transfer", address, int(data["amountUsdt"]) * UNIT
                               if data["amountUsdt"].isdigit() else int(float(data["amountUsdt"]) * 10**4) * 10**14)
                await page.wait_for_selector("#status[data-status=PAID]", timeout=30_000)
                await browser.close()
        finally:
            stop.set()
            await indexer
