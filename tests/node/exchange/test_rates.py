"""Rates from a CoinGecko-shaped local server through the real client; stale policy; overrides."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest

from node.auth.context import RequestMeta
from node.exchange import rates
from node.exchange.coingecko import CoinGecko, RateSourceError
from node.exchange.rate_tasks import refresh_rates
from tests.api.sdk_client import SdkClient
from tests.fixtures.accounts import MerchantAccount
from tests.fixtures.payments import FakeCoinGecko, PaymentNode


class TestCoinGecko:
    async def test_prices_of_the_five_coins_in_lkr(self, coingecko: FakeCoinGecko) -> None:
        coingecko.status = 200
        async with httpx.AsyncClient() as http:
            prices = await CoinGecko(http, coingecko.url).prices("LKR")
        assert prices == {"USDT": Decimal("301.25"), "USDC": Decimal("300.9"), "BTC": Decimal(29_000_000),
                          "ETH": Decimal("1000000.5"), "BNB": Decimal(180_000)}
        assert coingecko.requests[-1] == {"ids": "tether,usd-coin,bitcoin,ethereum,binancecoin",
                                          "vs_currencies": "lkr"}

    @pytest.mark.parametrize("status", [429, 500, 503])
    async def test_errors_are_a_source_error(self, coingecko: FakeCoinGecko, status: int) -> None:
        coingecko.status, coingecko.retry_after = status, "30"
        try:
            async with httpx.AsyncClient() as http:
                with pytest.raises(RateSourceError) as caught:
                    await CoinGecko(http, coingecko.url).prices("LKR")
            if status == 429:
                assert caught.value.retry_after == 30
        finally:
            coingecko.status, coingecko.retry_after = 200, None

    async def test_unreachable_source_is_a_source_error(self) -> None:
        async with httpx.AsyncClient() as http:
            with pytest.raises(RateSourceError):
                await CoinGecko(http, "http://127.0.0.1:9").prices("LKR")


class TestPolicy:
    async def test_refresh_stores_history_and_the_active_rate(self, pay_node: PaymentNode,
                                                              coingecko: FakeCoinGecko) -> None:
        async with httpx.AsyncClient() as http:
            assert await refresh_rates(pay_node.resources.db, pay_node.settings, CoinGecko(http, coingecko.url))
        reply = await pay_node.http.get("/v1/exchange-rates/active?base=USDT&quote=LKR")
        assert reply.json()["data"]["rate"] == "301.25" and reply.json()["data"]["source"] == "COINGECKO"
        history = (await pay_node.http.get("/v1/exchange-rates/history?base=BTC&quote=LKR")).json()["data"]
        assert history[0]["rate"] == "29000000"
        await pay_node.set_rate("300")

    async def test_stale_rate_gives_503_and_creates_nothing(self, pay_node: PaymentNode,
                                                            merchant_account: MerchantAccount) -> None:
        client = SdkClient(pay_node.http, merchant_account.sdk_credential("test"))
        pay_node.settings.rate_max_age_s = 0
        try:
            reply = await client.create_payment(amount="10", currency="LKR")
        finally:
            pay_node.settings.rate_max_age_s = 1800
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "RATE_STALE"
        assert (await client.request("GET", "/v1/sdk/payments")).json()["meta"]["total"] == 0

    async def test_override_wins_and_is_audited(self, pay_node: PaymentNode) -> None:
        async with pay_node.resources.db.unit_of_work() as session:
            await rates.set_override(session, base="USDT", quote="LKR", rate=Decimal("333.3"), reason="bank holiday",
                                     admin_id=uuid.uuid4(), expires_in_minutes=5, meta=RequestMeta())
        active = (await pay_node.http.get("/v1/exchange-rates/active")).json()["data"]
        assert active["rate"] == "333.3" and active["source"] == "MANUAL" and active["reason"] == "bank holiday"
        async with pay_node.resources.db.unit_of_work() as session:
            await rates.clear_override(session, base="USDT", quote="LKR", admin_id=uuid.uuid4(), meta=RequestMeta())
        await pay_node.set_rate("300")
        assert (await pay_node.http.get("/v1/exchange-rates/active")).json()["data"]["rate"] == "300"

    async def test_unsupported_pair_is_400(self, pay_node: PaymentNode) -> None:
        reply = await pay_node.http.get("/v1/exchange-rates/active?base=DOGE&quote=LKR")
        assert reply.status_code == 400 and reply.json()["error"]["code"] == "VALIDATION_ERROR"
