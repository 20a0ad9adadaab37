"""Treasury operations on an exchange are recorded whole: an exchange error leaves a FAILED order
with the error's code, never an order that looks placed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from node.exchange import treasury
from node.exchange.exchanges import ExchangeInsufficientBalance, ExchangeMaintenance
from node.exchange.treasury_models import ExchangeOrder
from node.resources import Resources
from tests.fixtures.exchanges import KEY, PASSPHRASE, SECRET, SERVERS, ExchangeServer

pytestmark = pytest.mark.parametrize("exchange_server", sorted(SERVERS), indirect=True)


def configured(resources: Resources, server: ExchangeServer):  # type: ignore[no-untyped-def]
    return resources.settings.model_copy(update={
        "exchange_credentials": {server.name: {"apiKey": KEY, "secret": SECRET, "password": PASSPHRASE}},
        "exchange_urls": {server.name: server.url}})


async def orders_of(resources: Resources, server: ExchangeServer) -> list[ExchangeOrder]:
    async with resources.db.unit_of_work() as session:
        rows = await session.execute(select(ExchangeOrder).where(ExchangeOrder.exchange == server.name)
                                     .order_by(ExchangeOrder.created_at))
        return list(rows.scalars())


class TestSales:
    async def test_errors_leave_failed_orders_and_successes_placed_ones(
        self, resources: Resources, exchange_server: ExchangeServer,
    ) -> None:
        settings = configured(resources, exchange_server)
        before = len(await orders_of(resources, exchange_server))
        with pytest.raises(ExchangeInsufficientBalance):
            await treasury.sell_usdt(resources.db, settings, exchange_server.name, Decimal("5000"))
        exchange_server.state.fail_next = "maintenance"
        with pytest.raises(ExchangeMaintenance):
            await treasury.sell_usdt(resources.db, settings, exchange_server.name, Decimal("10"))
        placed = await treasury.sell_usdt(resources.db, settings, exchange_server.name, Decimal("10"),
                                          price=Decimal("1.01"))
        assert placed.status == "OPEN" and placed.exchange_order_id
        refreshed = await treasury.refresh_order(resources.db, settings, placed.id)
        assert refreshed.status == "OPEN"
        rows = (await orders_of(resources, exchange_server))[before:]
        assert [(r.status, r.error_code) for r in rows] == [
            ("FAILED", "EXCHANGE_INSUFFICIENT_BALANCE"), ("FAILED", "EXCHANGE_MAINTENANCE"), ("OPEN", None)]
        assert all(r.exchange_order_id is None for r in rows[:2])
        assert exchange_server.state.balances["USDT"] == Decimal("1000")
