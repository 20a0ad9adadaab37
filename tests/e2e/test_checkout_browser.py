"""The hosted checkout in headless Chromium, on a phone-sized screen: an injected EIP-1193 wallet
(an anvil account) pays, a plain transfer pays, and the page turns PAID from the indexed events;
success and cancel redirects go to the payment's stored URLs only; LKR amounts, underpayment,
expiry and failure as the customer sees them; the add-chain path; polite polling under 429."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import segno
from playwright.async_api import Browser, Page, Route, async_playwright

from tests.api.sdk_client import SdkClient
from tests.fixtures.accounts import MerchantAccount
from tests.fixtures.contracts import PAYERS, UNIT
from tests.fixtures.payments import PaymentNode, indexing, same_node, serving

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
SHOP = "https://shop.example"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install -y chromium")]

# an EIP-1193 provider forwarding to anvil, whose accounts are unlocked. With `unknownChain` it is a
# wallet that does not know the payment's chain: wallet_switchEthereumChain answers 4902 until
# wallet_addEthereumChain was called (its params are kept in window.__addedChains)
PROVIDER = """
window.__addedChains = [];
window.ethereum = {
  isMetaMask: false,
  request: async function ({method, params}) {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return [%(account)r];
    if (method === "wallet_addEthereumChain") { window.__addedChains.push(params[0]); return null; }
    if (method === "wallet_switchEthereumChain") {
      if (%(unknown_chain)s && window.__addedChains.length === 0) {
        const e = new Error("Unrecognized chain ID"); e.code = 4902; throw e;
      }
      return null;
    }
    const reply = await fetch(%(rpc)r, {method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({jsonrpc: "2.0", id: 1, method: method, params: params || []})});
    const body = await reply.json();
    if (body.error) { const e = new Error(body.error.message); e.code = body.error.code; throw e; }
    return body.result;
  }
};
"""


def provider(node: PaymentNode, account: str, *, unknown_chain: bool = False) -> str:
    return PROVIDER % {"account": account, "rpc": node.chain.anvil.url, "unknown_chain": str(unknown_chain).lower()}


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(scope="module")
async def page_server(pay_node: PaymentNode) -> AsyncIterator[str]:
    """The same node (database, chain) as a second app whose settings offer customers' wallets a
    public RPC URL (another spelling of anvil's address than the node's own RPC URL)."""
    async with serving(*same_node(
            pay_node, public_rpc_url=pay_node.chain.anvil.url.replace("127.0.0.1", "localhost"))) as url:
        yield url


@pytest_asyncio.fixture
async def indexed(pay_node: PaymentNode) -> AsyncIterator[None]:
    """The indexer following the chain while the test runs (as the indexer role would)."""
    async with indexing(pay_node, interval=0.2):
        yield


@pytest_asyncio.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=PHONE)
    # the shop the customer is sent back to
    await context.route(f"{SHOP}/**", lambda route: route.fulfill(body="<h1>shop</h1>", content_type="text/html"))
    opened = await context.new_page()
    yield opened
    await context.close()


async def _create(node: PaymentNode, account: MerchantAccount, **body: Any) -> dict[str, Any]:
    client = SdkClient(node.http, account.sdk_credential("test"))
    body.setdefault("amount", "1500")
    body.setdefault("currency", "LKR")
    reply = await client.create_payment(**body)
    assert reply.status_code == 201, reply.text
    return reply.json()["data"]  # type: ignore[no-any-return]


def _units(usdt: str) -> int:
    return int(Decimal(usdt) * UNIT)


def _lkr(amount: str) -> str:
    cents = int(Decimal(amount) * 100)
    return f"{cents // 100:,}.{cents % 100:02d}"


@contextmanager
def _dialogs(page: Page) -> Iterator[list[str]]:
    seen: list[str] = []
    page.on("dialog", lambda dialog: (seen.append(dialog.message), asyncio.ensure_future(dialog.dismiss())))
    yield seen


class TestHostedCheckout:
    async def test_wallet_button_pays_and_the_page_turns_paid(self, pay_node: PaymentNode, indexed: None,
                                                              merchant_account: MerchantAccount, page: Page) -> None:
        payer = PAYERS[2]
        pay_node.chain.chain.transact(payer, "MockUSDT", "faucet", payer, 100 * UNIT)
        data = await _create(pay_node, merchant_account)
        await page.add_init_script(provider(pay_node, payer))
        await page.goto(data["checkoutLink"])
        assert await page.text_content("#amount-usdt") == data["amountUsdt"]
        await page.click("#pay-wallet")
        await page.wait_for_selector("#status[data-status=PAID]", timeout=30_000)

    async def test_plain_transfer_turns_the_page_paid(self, pay_node: PaymentNode, indexed: None,
                                                      merchant_account: MerchantAccount, page: Page) -> None:
        data = await _create(pay_node, merchant_account, provider="BINANCE")
        await page.goto(data["checkoutLink"])
        steps = await page.text_content("#exchange-steps") or ""
        address = await page.text_content("#deposit-address") or ""
        assert "BSC (BEP20)" in steps and address in steps and f"{data['amountUsdt']} USDT" in steps
        payer = PAYERS[3]
        chain = pay_node.chain.chain
        chain.transact(payer, "MockUSDT", "faucet", payer, 100 * UNIT)
        chain.transact(payer, "MockUSDT", "transfer", address, _units(data["amountUsdt"]))
        await page.wait_for_selector("#status[data-status=PAID]", timeout=30_000)


class TestExchangeQr:
    async def test_an_exchange_payment_s_qr_is_the_plain_deposit_address(
            self, pay_node: PaymentNode, merchant_account: MerchantAccount) -> None:
        exchange = await _create(pay_node, merchant_account, provider="KUCOIN")
        wallet = await _create(pay_node, merchant_account)

        def svg(content: str) -> bytes:
            out = io.BytesIO()
            segno.make(content, error="m").save(out, kind="svg", scale=6, border=2, xmldecl=False)
            return out.getvalue()

        # an exchange's scanner takes an EIP-681 URI's first address (the token contract) as the destination
        shown = (await pay_node.http.get(f"/checkout/{exchange['id']}/qr.svg")).content
        assert shown == svg(exchange["depositAddress"])
        assert (await pay_node.http.get(f"/checkout/{wallet['id']}/qr.svg")).content == svg(wallet["qrContent"])
        assert wallet["qrContent"].startswith(f"ethereum:{wallet['tokenAddress']}@{wallet['chainId']}/transfer?")


class TestRedirects:
    async def test_paid_goes_to_the_stored_success_url_never_to_one_in_the_query(
            self, pay_node: PaymentNode, indexed: None, merchant_account: MerchantAccount, page: Page) -> None:
        data = await _create(pay_node, merchant_account, successUrl=f"{SHOP}/thanks?order=7",
                             cancelUrl=f"{SHOP}/cancelled")
        evil = "javascript:alert(document.domain)"
        with _dialogs(page) as dialogs:
            await page.goto(f"{data['checkoutLink']}?successUrl={evil}&cancelUrl={evil}")
            payer = PAYERS[4]
            chain = pay_node.chain.chain
            chain.transact(payer, "MockUSDT", "faucet", payer, 100 * UNIT)
            chain.transact(payer, "MockUSDT", "transfer", data["depositAddress"], _units(data["amountUsdt"]))
            await page.wait_for_url(f"{SHOP}/thanks?order=7", timeout=30_000)
        assert dialogs == []

    async def test_the_session_url_s_query_leads_to_the_stored_urls(
            self, pay_node: PaymentNode, merchant_account: MerchantAccount, page: Page) -> None:
        client = SdkClient(pay_node.http, merchant_account.sdk_credential("test"))
        reply = await client.request("POST", "/v1/sdk/checkout/sessions", {
            "amount": "0.01", "currency": "USDT", "successUrl": f"{SHOP}/ok", "cancelUrl": f"{SHOP}/cancel"})
        session = reply.json()["data"]
        assert session["url"].endswith("?successUrl=https%3A%2F%2Fshop.example%2Fok"
                                       "&cancelUrl=https%3A%2F%2Fshop.example%2Fcancel")
        await page.goto(session["url"])
        # 0.01 USDT: the simulated customer lets the payment expire -> the cancel URL
        payment = (await client.get_payment(session["paymentId"])).json()["data"]
        assert (await pay_node.http.post(f"/test/simulate/{payment['providerPayId']}")).status_code == 200
        await page.wait_for_url(f"{SHOP}/cancel", timeout=15_000)

    async def test_expired_goes_to_the_stored_cancel_url_and_a_javascript_url_never_runs(
            self, pay_node: PaymentNode, merchant_account: MerchantAccount, page: Page) -> None:
        data = await _create(pay_node, merchant_account, amount="0.01", currency="USDT",
                             successUrl=f"{SHOP}/thanks", cancelUrl=f"{SHOP}/cancelled")
        with _dialogs(page) as dialogs:
            await page.goto(f"{data['checkoutLink']}?cancelUrl=javascript:alert(document.domain)")
            await pay_node.http.post(f"/test/simulate/{data['providerPayId']}")
            await page.wait_for_selector("#status[data-status=EXPIRED]", timeout=15_000)
            await page.wait_for_url(f"{SHOP}/cancelled", timeout=15_000)
        assert dialogs == []

    async def test_without_urls_an_expired_page_stays_and_says_so(
            self, pay_node: PaymentNode, merchant_account: MerchantAccount, page: Page) -> None:
        data = await _create(pay_node, merchant_account, amount="0.01", currency="USDT")
        await page.goto(f"{data['checkoutLink']}?cancelUrl=https://evil.example/")
        await pay_node.http.post(f"/test/simulate/{data['providerPayId']}")
        await page.wait_for_selector("#status[data-status=EXPIRED]", timeout=15_000)
        await asyncio.sleep(3.5)  # past the page's redirect delay
        assert page.url.startswith(data["checkoutLink"])
        assert await page.text_content("#status") == "Expired"
        assert await page.is_disabled("#pay-wallet")


class TestWhatTheCustomerSees:
    async def test_lkr_amounts_for_every_currency(self, pay_node: PaymentNode, merchant_account: MerchantAccount,
                                                  page: Page) -> None:
        lkr = await _create(pay_node, merchant_account, amount="1500", currency="LKR")
        usdt = await _create(pay_node, merchant_account, amount="2", currency="USDT")
        await page.goto(lkr["checkoutLink"])
        assert await page.text_content("#amount-lkr") == "1,500.00"
        await page.goto(usdt["checkoutLink"])
        assert await page.text_content("#amount-lkr") == _lkr(usdt["amountLkr"])
        assert Decimal(usdt["amountLkr"]) > 0

    async def test_a_phone_sized_screen_holds_the_page(self, pay_node: PaymentNode,
                                                       merchant_account: MerchantAccount, page: Page) -> None:
        data = await _create(pay_node, merchant_account, provider="BYBIT")
        await page.goto(data["checkoutLink"])
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width}px wide on a {PHONE['width']}px screen"
        assert await page.is_visible("#pay-wallet")
        link = page.locator("#open-wallet")
        assert await link.is_visible()
        # the EIP-681 deep link a phone's wallet app opens
        assert await link.get_attribute("href") == data["deepLink"]
        box = await link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]

    async def test_underpayment_says_how_much_more_to_send(self, pay_node: PaymentNode, indexed: None,
                                                          merchant_account: MerchantAccount, page: Page) -> None:
        data = await _create(pay_node, merchant_account, amount="2", currency="USDT")
        await page.goto(data["checkoutLink"])
        payer = PAYERS[5]
        chain = pay_node.chain.chain
        chain.transact(payer, "MockUSDT", "faucet", payer, 100 * UNIT)
        chain.transact(payer, "MockUSDT", "transfer", data["depositAddress"], _units("0.5"))
        await page.wait_for_selector("#underpaid", state="visible", timeout=30_000)
        text = " ".join((await page.text_content("#underpaid") or "").split())
        assert text == ("Received 0.5 of 2 USDT. Send 1.5 USDT more to the same address before the time runs out.")
        assert (await page.text_content("#countdown") or "").startswith("Expires in ")
        # the rest arrives: paid, the message goes
        chain.transact(payer, "MockUSDT", "transfer", data["depositAddress"], _units("1.5"))
        await page.wait_for_selector("#status[data-status=PAID]", timeout=30_000)
        assert await page.is_hidden("#underpaid")

    async def test_a_failed_payment_is_shown_failed(self, pay_node: PaymentNode, indexed: None,
                                                    merchant_account: MerchantAccount, page: Page) -> None:
        data = await _create(pay_node, merchant_account, amount="0.02", currency="USDT")
        await page.goto(data["checkoutLink"])
        await pay_node.http.post(f"/test/simulate/{data['providerPayId']}")
        await page.wait_for_selector("#status[data-status=FAILED]", timeout=15_000)
        assert await page.text_content("#status") == "Failed"
        assert await page.is_hidden("#underpaid")


class TestWallets:
    async def test_a_wallet_that_does_not_know_the_chain_is_asked_to_add_it(
            self, pay_node: PaymentNode, page_server: str, indexed: None, merchant_account: MerchantAccount,
            page: Page) -> None:
        payer = PAYERS[6]
        pay_node.chain.chain.transact(payer, "MockUSDT", "faucet", payer, 100 * UNIT)
        data = await _create(pay_node, merchant_account)
        await page.add_init_script(provider(pay_node, payer, unknown_chain=True))
        await page.goto(f"{page_server}/checkout/{data['id']}")
        assert pay_node.settings.rpc_urls[0] not in await page.content()  # the node's own RPC never shown
        await page.click("#pay-wallet")
        await page.wait_for_selector("#status[data-status=PAID]", timeout=30_000)
        added = await page.evaluate("window.__addedChains")
        public = pay_node.chain.anvil.url.replace("127.0.0.1", "localhost")
        assert added == [{"chainId": hex(data["chainId"]), "chainName": f"Open Pay test chain {data['chainId']}",
                          "nativeCurrency": {"name": "Ether", "symbol": "ETH", "decimals": 18},
                          "rpcUrls": [public]}]

    async def test_without_a_public_rpc_url_no_chain_is_offered(
            self, pay_node: PaymentNode, merchant_account: MerchantAccount, page: Page) -> None:
        data = await _create(pay_node, merchant_account)
        await page.add_init_script(provider(pay_node, PAYERS[6], unknown_chain=True))
        await page.goto(data["checkoutLink"])
        config = json.loads(await page.text_content("#checkout-config") or "{}")
        assert config["addChain"] is None
        assert pay_node.settings.rpc_urls[0] not in await page.content()
        await page.click("#pay-wallet")
        await page.wait_for_function("document.getElementById('wallet-error').textContent.length > 0")
        assert await page.evaluate("window.__addedChains") == []


class TestPolling:
    async def test_the_page_backs_off_on_429_and_carries_on(self, pay_node: PaymentNode, indexed: None,
                                                           merchant_account: MerchantAccount, page: Page) -> None:
        data = await _create(pay_node, merchant_account, amount="1", currency="USDT")
        polls: list[tuple[float, int]] = []
        loop = asyncio.get_running_loop()

        async def limited(route: Route) -> None:
            if not polls:
                polls.append((loop.time(), 429))
                await route.fulfill(status=429, headers={"Retry-After": "3"}, content_type="application/json",
                                    body='{"error":{"code":"RATE_LIMITED","message":"too many requests"}}')
            else:
                polls.append((loop.time(), 200))
                await route.continue_()

        await page.route("**/v1/payments/*/checkout", limited)
        await page.goto(data["checkoutLink"])
        payer = PAYERS[7]
        chain = pay_node.chain.chain
        chain.transact(payer, "MockUSDT", "faucet", payer, 10 * UNIT)
        chain.transact(payer, "MockUSDT", "transfer", data["depositAddress"], _units(data["amountUsdt"]))
        await page.wait_for_selector("#status[data-status=PAID]", timeout=30_000)
        assert [code for _, code in polls[:2]] == [429, 200]
        # the retry waited at least the Retry-After the server asked for
        assert polls[1][0] - polls[0][0] >= 2.9
