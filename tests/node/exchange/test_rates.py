"""Rates from a CoinGecko-shaped local server through the real client; stale policy; overrides
through the admin routes (audited); the SEED placeholder; payments in every fetched currency."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin.models import AuditLog
from node.exchange import rates
from node.exchange.coingecko import CoinGecko, RateSourceError
from node.exchange.rate_models import ExchangeRate, RateOverride
from node.exchange.rate_tasks import refresh_rates
from node.scheduler import build_scheduler
from tests.api.sdk_client import SdkClient
from tests.fixtures.accounts import AdminAccount, MerchantAccount
from tests.fixtures.payments import FakeCoinGecko, PaymentNode

OVERRIDE = "/v1/admin/exchange-rates/override"


async def active_rate(node: PaymentNode, pair: str = "base=USDT&quote=LKR") -> dict[str, Any]:
    reply = await node.http.get(f"/v1/exchange-rates/active?{pair}")
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


async def audit_rows(node: PaymentNode, action: str, actor: uuid.UUID) -> list[AuditLog]:
    async with node.resources.db.unit_of_work() as session:
        return list((await session.execute(select(AuditLog).where(
            AuditLog.action == action, AuditLog.actor_id == str(actor)).order_by(AuditLog.id))).scalars())


@pytest_asyncio.fixture
async def fetched(pay_node: PaymentNode) -> AsyncIterator[PaymentNode]:
    """A fetched USDT/LKR rate of 300 and no override, before and after the test (the node is shared)."""
    await pay_node.set_rate("300")
    yield pay_node
    async with pay_node.resources.db.unit_of_work() as session:
        await session.execute(update(RateOverride).where(RateOverride.cleared_at.is_(None))
                              .values(cleared_at=datetime.now(UTC)))
    await pay_node.set_rate("300")


class TestCoinGecko:
    async def test_prices_of_the_five_coins_in_lkr(self, coingecko: FakeCoinGecko) -> None:
        coingecko.status = 200
        async with httpx.AsyncClient() as http:
            prices = await CoinGecko(http, coingecko.url).prices("LKR")
        assert prices == {"USDT": Decimal("301.25"), "USDC": Decimal("300.9"), "BTC": Decimal(29_000_000),
                          "ETH": Decimal("1000000.5"), "BNB": Decimal(180_000)}
        assert coingecko.requests[-1] == {"ids": "tether,usd-coin,bitcoin,ethereum,binancecoin",
                                          "vs_currencies": "lkr"}

    async def test_prices_keep_every_digit_sent(self, coingecko: FakeCoinGecko) -> None:
        # a float holds ~17 significant digits: 300.123456789012345678 would come back as 300.12345678901237
        coingecko.raw = (b'{"tether": {"lkr": 300.123456789012345678}, "bitcoin": {"lkr": 29000000.000000000001},'
                         b' "ethereum": {"lkr": NaN}, "binancecoin": {"lkr": -5}, "usd-coin": {"lkr": 3e2}}')
        try:
            async with httpx.AsyncClient() as http:
                prices = await CoinGecko(http, coingecko.url).prices("LKR")
        finally:
            coingecko.raw = None
        assert prices == {"USDT": Decimal("300.123456789012345678"), "BTC": Decimal("29000000.000000000001"),
                          "USDC": Decimal(300)}
        assert str(prices["USDT"]) == "300.123456789012345678"

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
    async def test_refresh_stores_history_and_the_active_rate(self, fetched: PaymentNode,
                                                              coingecko: FakeCoinGecko) -> None:
        async with httpx.AsyncClient() as http:
            assert await refresh_rates(fetched.resources.db, fetched.settings, CoinGecko(http, coingecko.url))
        data = await active_rate(fetched)
        assert data["rate"] == "301.25" and data["source"] == "COINGECKO"
        history = (await fetched.http.get("/v1/exchange-rates/history?base=BTC&quote=LKR")).json()["data"]
        assert history[0]["rate"] == "29000000"

    async def test_the_scheduled_rate_job_fetches_from_the_configured_source(self, fetched: PaymentNode,
                                                                             coingecko: FakeCoinGecko) -> None:
        scheduler = build_scheduler(fetched.resources)
        job = scheduler.get_job("exchange.rates")
        try:
            assert job is not None and job.next_run_time is not None  # at start, then every interval
            before = len(coingecko.requests)
            assert await job.func(*job.args) is True
        finally:
            for other in scheduler.get_jobs():
                for arg in other.args:
                    if hasattr(arg, "aclose"):
                        await arg.aclose()
        assert len(coingecko.requests) == before + 1
        assert (await active_rate(fetched))["rate"] == "301.25"
        assert (await active_rate(fetched, "base=ETH&quote=LKR"))["rate"] == "1000000.5"

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

    async def test_unsupported_pair_is_400(self, pay_node: PaymentNode) -> None:
        reply = await pay_node.http.get("/v1/exchange-rates/active?base=DOGE&quote=LKR")
        assert reply.status_code == 400 and reply.json()["error"]["code"] == "VALIDATION_ERROR"


class TestOverrides:
    async def test_override_wins_and_clearing_it_brings_back_the_fetched_rate(
            self, fetched: PaymentNode, platform_admin: AdminAccount, merchant_account: MerchantAccount) -> None:
        node = fetched
        reply = await node.http.post(OVERRIDE, headers=platform_admin.auth_headers,
                                     json={"rate": "333.3", "reason": "bank holiday", "expiresInMinutes": 30})
        assert reply.status_code == 201, reply.text
        data = reply.json()["data"]
        assert data["rate"] == "333.3" and data["source"] == "MANUAL" and data["reason"] == "bank holiday"
        expires = datetime.fromisoformat(data["expiresAt"].replace("Z", "+00:00"))
        assert timedelta(minutes=29) < expires - datetime.now(UTC) <= timedelta(minutes=30)
        assert (await active_rate(node))["rate"] == "333.3"
        paid = await SdkClient(node.http, merchant_account.sdk_credential("test")).create_payment(
            amount="666.6", currency="LKR")
        assert paid.status_code == 201 and paid.json()["data"]["amountUsdt"] == "2"
        # the override is not an observation: the history shows fetched rates only
        history = (await node.http.get("/v1/exchange-rates/history")).json()["data"]
        assert history[0]["source"] == "COINGECKO" and history[0]["rate"] == "300"

        cleared = await node.http.delete(f"{OVERRIDE}?base=USDT&quote=LKR", headers=platform_admin.auth_headers)
        assert cleared.status_code == 200 and cleared.json()["data"] == {"cleared": 1}
        back = await active_rate(node)  # no new fetch in between
        assert back["rate"] == "300" and back["source"] == "COINGECKO" and "reason" not in back

        [overridden] = await audit_rows(node, "exchange_rate.overridden", platform_admin.admin_id)
        assert overridden.actor_type == "ADMIN" and overridden.resource_id == "USDT/LKR"
        assert overridden.changes == {"rate": [None, "333.3"]}
        assert overridden.details is not None and overridden.details["reason"] == "bank holiday"
        [clear_row] = await audit_rows(node, "exchange_rate.override_cleared", platform_admin.admin_id)
        assert clear_row.resource_id == "USDT/LKR"
        again = await node.http.delete(OVERRIDE, headers=platform_admin.auth_headers)
        assert again.json()["data"] == {"cleared": 0}
        assert len(await audit_rows(node, "exchange_rate.override_cleared", platform_admin.admin_id)) == 1

    async def test_an_expired_override_gives_way_to_the_fetched_rate(self, fetched: PaymentNode,
                                                                     platform_admin: AdminAccount) -> None:
        node = fetched
        reply = await node.http.post(OVERRIDE, headers=platform_admin.auth_headers,
                                     json={"rate": "310", "reason": "test", "expiresInMinutes": 5})
        assert reply.status_code == 201 and (await active_rate(node))["rate"] == "310"
        async with node.resources.db.unit_of_work() as session:
            await session.execute(update(RateOverride).where(RateOverride.rate == Decimal(310),
                                                             RateOverride.cleared_at.is_(None))
                                  .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        back = await active_rate(node)
        assert back["rate"] == "300" and back["source"] == "COINGECKO"

    async def test_an_override_lasts_at_most_the_configured_age(self, fetched: PaymentNode,
                                                                platform_admin: AdminAccount) -> None:
        node = fetched
        limit = node.settings.rate_override_max_minutes
        too_long = await node.http.post(OVERRIDE, headers=platform_admin.auth_headers,
                                        json={"rate": "320", "reason": "x", "expiresInMinutes": limit + 1})
        assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "VALIDATION_ERROR"
        assert (await active_rate(node))["source"] == "COINGECKO"

        reply = await node.http.post(OVERRIDE, headers=platform_admin.auth_headers,
                                     json={"rate": "320", "reason": "no expiry given"})
        expires = datetime.fromisoformat(reply.json()["data"]["expiresAt"].replace("Z", "+00:00"))
        assert timedelta(minutes=limit - 1) < expires - datetime.now(UTC) <= timedelta(minutes=limit)
        # an override stored without an expiry (as older versions did) ends at the same age
        async with node.resources.db.unit_of_work() as session:
            await session.execute(update(RateOverride).where(RateOverride.cleared_at.is_(None))
                                  .values(expires_at=None))
        assert (await active_rate(node))["rate"] == "320"
        async with node.resources.db.unit_of_work() as session:
            await session.execute(update(RateOverride).where(RateOverride.cleared_at.is_(None))
                                  .values(created_at=datetime.now(UTC) - timedelta(minutes=limit, seconds=1)))
        assert (await active_rate(node))["source"] == "COINGECKO"

    @pytest.mark.parametrize("body", [
        {"rate": 333.3, "reason": "a float"}, {"rate": "1e3", "reason": "exponent"}, {"rate": "0", "reason": "zero"},
        {"rate": "333", "reason": "  "}, {"rate": "333"}, {"rate": "333", "reason": "r", "base": "DOGE"},
        {"rate": "333", "reason": "r", "base": ["USDT"]}, {"rate": "333", "reason": "r", "expiresInMinutes": 0},
        {"rate": "333", "reason": "r", "expiresInMinutes": "5"}, ["not", "an", "object"],
    ])
    async def test_bad_override_is_400_and_changes_nothing(self, fetched: PaymentNode, platform_admin: AdminAccount,
                                                           body: Any) -> None:
        reply = await fetched.http.post(OVERRIDE, headers=platform_admin.auth_headers, json=body)
        assert reply.status_code == 400 and reply.json()["error"]["code"] == "VALIDATION_ERROR", reply.text
        assert (await active_rate(fetched))["source"] == "COINGECKO"
        assert await audit_rows(fetched, "exchange_rate.overridden", platform_admin.admin_id) == []

    async def test_the_admin_routes_need_an_admin(self, fetched: PaymentNode,
                                                  merchant_account: MerchantAccount) -> None:
        body = {"rate": "1", "reason": "mine now"}
        for headers in ({}, merchant_account.auth_headers):
            assert (await fetched.http.post(OVERRIDE, headers=headers, json=body)).status_code in (401, 403)
            assert (await fetched.http.delete(OVERRIDE, headers=headers)).status_code in (401, 403)
            refresh = await fetched.http.post("/v1/admin/exchange-rates/refresh", headers=headers)
            assert refresh.status_code in (401, 403)
        assert (await active_rate(fetched))["rate"] == "300"

    async def test_refresh_route_fetches_now_and_reports_a_failing_source(
            self, fetched: PaymentNode, coingecko: FakeCoinGecko, platform_admin: AdminAccount) -> None:
        reply = await fetched.http.post("/v1/admin/exchange-rates/refresh", headers=platform_admin.auth_headers)
        assert reply.status_code == 200, reply.text
        assert reply.json()["data"] == {"USDT": "301.25", "USDC": "300.9", "BTC": "29000000", "ETH": "1000000.5",
                                        "BNB": "180000"}
        assert (await active_rate(fetched))["rate"] == "301.25"
        coingecko.status = 503
        try:
            failed = await fetched.http.post("/v1/admin/exchange-rates/refresh",
                                             headers=platform_admin.auth_headers)
        finally:
            coingecko.status = 200
        assert failed.status_code == 503 and failed.json()["error"]["code"] == "RATE_SOURCE_UNAVAILABLE"
        assert (await active_rate(fetched))["rate"] == "301.25"


class TestSeed:
    async def test_first_failed_fetch_seeds_a_rate_for_test_mode_only(
            self, fetched: PaymentNode, coingecko: FakeCoinGecko, merchant_account: MerchantAccount) -> None:
        node = fetched
        async with node.resources.db.unit_of_work() as session:  # a node that never fetched
            await session.execute(delete(ExchangeRate).where(ExchangeRate.base == "USDT",
                                                             ExchangeRate.quote == "LKR"))
        coingecko.status = 500
        try:
            async with httpx.AsyncClient() as http:
                assert not await refresh_rates(node.resources.db, node.settings, CoinGecko(http, coingecko.url))
                assert not await refresh_rates(node.resources.db, node.settings, CoinGecko(http, coingecko.url))
        finally:
            coingecko.status = 200
        async with node.resources.db.unit_of_work() as session:
            seeded = list((await session.execute(select(ExchangeRate).where(
                ExchangeRate.base == "USDT", ExchangeRate.quote == "LKR"))).scalars())
        assert [(r.rate, r.source) for r in seeded] == [(Decimal(325), "SEED")]  # once
        assert (await active_rate(node))["source"] == "SEED"

        live = await SdkClient(node.http, merchant_account.sdk_credential("live")).create_payment(amount="10")
        assert live.status_code == 503 and live.json()["error"]["code"] == "RATE_UNAVAILABLE", live.text
        test_client = SdkClient(node.http, merchant_account.sdk_credential("test"))
        made = await test_client.create_payment(amount="650", currency="LKR")
        assert made.status_code == 201 and made.json()["data"]["amountUsdt"] == "2"
        listed = (await test_client.request("GET", "/v1/sdk/payments")).json()
        assert listed["meta"]["total"] == 1  # the live one was not created

        await node.set_rate("300")  # the first fetched rate prices live payments again
        live = await SdkClient(node.http, merchant_account.sdk_credential("live")).create_payment(amount="10")
        assert live.status_code == 201, live.text

    async def test_no_rate_at_all_is_503_rate_unavailable(self, fetched: PaymentNode,
                                                          merchant_account: MerchantAccount) -> None:
        client = SdkClient(fetched.http, merchant_account.sdk_credential("test"))
        async with fetched.resources.db.unit_of_work() as session:
            await session.execute(delete(ExchangeRate).where(ExchangeRate.base == "BNB"))
        reply = await client.create_payment(amount="1", currency="BNB")
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "RATE_UNAVAILABLE"

    async def test_seed_is_written_once_and_locks_for_test_mode_only(self, session: AsyncSession,
                                                                     pay_node: PaymentNode) -> None:
        # in a transaction rolled back after the test
        await session.execute(delete(ExchangeRate).where(ExchangeRate.base == "USDT", ExchangeRate.quote == "LKR"))
        assert await rates.seed_if_empty(session, pay_node.settings)
        assert not await rates.seed_if_empty(session, pay_node.settings)
        with pytest.raises(rates.RateUnavailable):
            await rates.locked_rate(session, pay_node.settings, mode="live")
        seeded = await rates.locked_rate(session, pay_node.settings, mode="test")
        assert seeded.rate == Decimal(325) and seeded.source == "SEED"


class TestEveryCurrency:
    async def test_payments_in_each_fetched_currency_convert_through_lkr(
            self, fetched: PaymentNode, coingecko: FakeCoinGecko, platform_admin: AdminAccount,
            merchant_account: MerchantAccount) -> None:
        reply = await fetched.http.post("/v1/admin/exchange-rates/refresh", headers=platform_admin.auth_headers)
        assert reply.status_code == 200
        client = SdkClient(fetched.http, merchant_account.sdk_credential("test"))
        # LKR per coin from the server: USDT 301.25, USDC 300.9, BTC 29,000,000, ETH 1,000,000.5,
        # BNB 180,000; amounts due in USDT are rounded up to 4 decimals; exchangeRate is the coin per USDT
        expected = {
            ("USDT", "12.5"): ("12.5", None),
            ("USDC", "10"): ("9.9884", "1.001163177135"),  # 3009 LKR / 301.25 = 9.98838...
            ("BTC", "0.001"): ("96.2656", "0.000010387931"),  # 29000 LKR
            ("ETH", "0.01"): ("33.1951", "0.000301249849"),  # 10000.005 LKR
            ("BNB", "0.5"): ("298.7552", "0.001673611111"),  # 90000 LKR
            ("LKR", "3012.50"): ("10", "301.25"),
        }
        for (currency, amount), (usdt, exchange_rate) in expected.items():
            made = await client.create_payment(amount=amount, currency=currency)
            assert made.status_code == 201, (currency, made.text)
            data = made.json()["data"]
            assert (data["currency"], data["amountUsdt"], data.get("exchangeRate")) == (currency, usdt, exchange_rate)
