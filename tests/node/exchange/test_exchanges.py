"""One suite every exchange adapter passes: the real ccxt client against a local server that
speaks the exchange's wire format and checks ccxt's request signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from node.exchange.exchanges import (
    ExchangeInsufficientBalance,
    ExchangeMaintenance,
    ExchangeRateLimited,
    exchange_for,
)
from node.exchange.exchanges.base import CcxtExchange, ExchangeAuthFailed
from tests.fixtures.exchanges import DEPOSIT_ADDRESS, KEY, PASSPHRASE, SECRET, SERVERS, ExchangeServer

pytestmark = pytest.mark.parametrize("exchange_server", sorted(SERVERS), indirect=True)


@pytest_asyncio.fixture
async def adapter(exchange_server: ExchangeServer, settings) -> AsyncIterator[CcxtExchange]:  # type: ignore[no-untyped-def]
    configured = settings.model_copy(update={
        "exchange_credentials": {exchange_server.name: {"apiKey": KEY, "secret": SECRET, "password": PASSPHRASE}},
        "exchange_urls": {exchange_server.name: exchange_server.url},
    })
    exchange = exchange_for(configured, exchange_server.name)
    assert isinstance(exchange, CcxtExchange)
    yield exchange
    await exchange.close()


class TestMarketData:
    async def test_ticker_of_usdt_in_usd(self, adapter: CcxtExchange) -> None:
        ticker = await adapter.ticker()
        assert ticker.symbol == "USDT/USD"
        assert ticker.bid == Decimal("0.9994") and ticker.ask == Decimal("0.9996") and ticker.last == Decimal("0.9995")


class TestAccount:
    async def test_balances(self, adapter: CcxtExchange, exchange_server: ExchangeServer) -> None:
        balances = await adapter.balances()
        assert balances["USDT"].free == Decimal("1000") and balances["USDT"].total == Decimal("1000")
        assert exchange_server.state.bad_signatures == 0 and exchange_server.state.signed_requests >= 1

    async def test_deposit_address_on_bsc(self, adapter: CcxtExchange) -> None:
        address = await adapter.deposit_address("USDT", network="BSC")
        assert address.address == DEPOSIT_ADDRESS and address.network == "BSC"

    async def test_withdraw(self, adapter: CcxtExchange, exchange_server: ExchangeServer) -> None:
        receipt = await adapter.withdraw("USDT", Decimal("25.5"), "0x" + "ab" * 20, network="BSC")
        assert receipt.id
        [sent] = exchange_server.state.withdrawals
        assert sent["amount"] == Decimal("25.5") and sent["address"].lower() == "0x" + "ab" * 20
        assert exchange_server.state.balances["USDT"] == Decimal("974.5")
        assert exchange_server.state.bad_signatures == 0


class TestOrders:
    async def test_market_sale_fills_and_its_status_is_read_back(
        self, adapter: CcxtExchange, exchange_server: ExchangeServer,
    ) -> None:
        order = await adapter.sell_usdt(Decimal("100"), client_order_id="op1")
        assert order.side == "sell" and order.type == "market" and order.amount == Decimal("100")
        status = await adapter.order_status(order.id)
        assert status.id == order.id and status.status == "closed" and status.filled == Decimal("100")
        assert exchange_server.state.balances["USDT"] == Decimal("900")

    async def test_limit_sale_rests_open(self, adapter: CcxtExchange) -> None:
        order = await adapter.sell_usdt(Decimal("10"), price=Decimal("1.01"))
        status = await adapter.order_status(order.id)
        assert status.status == "open" and status.price == Decimal("1.01")


class TestErrors:
    async def test_insufficient_balance(self, adapter: CcxtExchange) -> None:
        with pytest.raises(ExchangeInsufficientBalance):
            await adapter.sell_usdt(Decimal("5000"))

    async def test_rate_limit(self, adapter: CcxtExchange, exchange_server: ExchangeServer) -> None:
        exchange_server.state.fail_next = "rate_limit"
        with pytest.raises(ExchangeRateLimited):
            await adapter.balances()

    async def test_maintenance(self, adapter: CcxtExchange, exchange_server: ExchangeServer) -> None:
        exchange_server.state.fail_next = "maintenance"
        with pytest.raises(ExchangeMaintenance):
            await adapter.balances()

    async def test_a_wrong_secret_is_refused_by_the_server(
        self, exchange_server: ExchangeServer, settings,  # type: ignore[no-untyped-def]
    ) -> None:
        configured = settings.model_copy(update={
            "exchange_credentials": {exchange_server.name: {"apiKey": KEY, "secret": "wrong", "password": PASSPHRASE}},
            "exchange_urls": {exchange_server.name: exchange_server.url},
        })
        exchange = exchange_for(configured, exchange_server.name)
        try:
            with pytest.raises(ExchangeAuthFailed):
                await exchange.balances()
        finally:
            await exchange.close()
        assert exchange_server.state.bad_signatures == 1
