"""Risk scoring: the rules' arithmetic on their own, then every input computed by the real node
(payments created through the SDK route; time windows moved by shifting ``created_at``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

import pytest
from sqlalchemy import func, select, update

from node.config import Settings
from node.money import WEI_PER_TOKEN
from node.payments import risk
from node.payments.models import Payment
from node.resources import Resources
from tests.api.sdk_client import SdkClient
from tests.fixtures.accounts import MerchantAccount, make_merchant
from tests.fixtures.payments import PaymentNode

USDT = WEI_PER_TOKEN


DEFAULTS = Settings(_env_file=None)


def merchant(last_hour: int = 0, last_day: int = 0, day_volume: int = 0, average: int | None = None,
             usual: tuple[int, int] | None = None, settings: Settings = DEFAULTS) -> risk.MerchantStats:
    """``usual``: payments and USDT of its usual day."""
    normal = risk.merchant_normal(Decimal(usual[0]), Decimal(usual[1] * USDT), settings) if usual else \
        risk.merchant_normal(None, None, settings)
    return risk.merchant_stats(last_hour, last_day, day_volume, average, normal, settings)


def flags(amount_usdt: int, stats: risk.MerchantStats, customer: risk.CustomerStats | None = None,
          settings: Settings = DEFAULTS) -> tuple[list[str], int]:
    scored = risk.score(amount_usdt * USDT, stats, customer, settings)
    return scored.flags, scored.score


class TestRules:
    def test_levels_follow_the_settings(self) -> None:
        assert [risk.level_of(n, DEFAULTS) for n in (0, 29, 30, 59, 60, 79, 80, 100)] == [
            "LOW", "LOW", "MEDIUM", "MEDIUM", "HIGH", "HIGH", "CRITICAL", "CRITICAL"]
        moved = DEFAULTS.model_copy(update={"risk_medium_score": 10, "risk_high_score": 20, "risk_block_score": 40})
        assert [risk.level_of(n, moved) for n in (9, 10, 20, 39, 40)] == ["LOW", "MEDIUM", "HIGH", "HIGH", "CRITICAL"]

    def test_a_window_scores_once_the_customer_first(self) -> None:
        burst = merchant(last_hour=60, last_day=60)
        customer = risk.CustomerStats(last_hour=10, last_day=10, day_volume=0, known=True)
        assert flags(1, burst, customer) == (["VELOCITY_HOUR_HIGH"], 30)
        calm = risk.CustomerStats(last_hour=5, last_day=5, day_volume=0, known=True)
        assert flags(1, burst, calm) == (["MERCHANT_VELOCITY_HOUR_HIGH"], 30)
        assert flags(1, burst) == (["MERCHANT_VELOCITY_HOUR_HIGH"], 30)

    def test_the_merchant_is_measured_against_its_own_normal(self) -> None:
        # without a normal: the minimum counts (30 and 50 in an hour, 200 and 500 in 24 h)
        assert flags(1, merchant(last_hour=29)) == ([], 0)
        assert flags(1, merchant(last_hour=30)) == (["MERCHANT_VELOCITY_HOUR"], 15)
        assert flags(1, merchant(last_day=500)) == (["MERCHANT_VELOCITY_DAY_HIGH"], 25)
        # a merchant used to 480 payments a day (20 an hour) flags at 3x (60) and 5x (100)
        busy = (480, 4_800)
        assert flags(1, merchant(last_hour=59, usual=busy)) == ([], 0)
        assert flags(1, merchant(last_hour=60, usual=busy)) == (["MERCHANT_VELOCITY_HOUR"], 15)
        assert flags(1, merchant(last_hour=100, usual=busy))[0] == ["MERCHANT_VELOCITY_HOUR_HIGH"]
        assert flags(1, merchant(last_day=1439, usual=busy)) == ([], 0)
        assert flags(1, merchant(last_day=1440, usual=busy))[0] == ["MERCHANT_VELOCITY_DAY"]
        # its 24 h volume: above 50k USDT, and above 3x its usual (a bigger normal raises the bar)
        assert flags(1, merchant(day_volume=50_000 * USDT, usual=busy))[0] == ["MERCHANT_DAILY_VOLUME"]
        big = (480, 30_000)
        assert flags(1, merchant(day_volume=89_999 * USDT, usual=big)) == ([], 0)
        assert flags(1, merchant(day_volume=90_000 * USDT, usual=big))[0] == ["MERCHANT_DAILY_VOLUME"]

    def test_every_point_and_count_is_a_setting(self) -> None:
        customer = risk.CustomerStats(last_hour=2, last_day=2, day_volume=0, known=True)
        assert flags(1, merchant(), customer) == ([], 0)
        tuned = DEFAULTS.model_copy(update={"risk_hour_count": 2, "risk_hour_points": 7,
                                            "risk_medium_amount_usdt": 0, "risk_medium_amount_points": 4,
                                            "risk_average_multiple": Decimal("1.5"), "risk_average_points": 1,
                                            "risk_merchant_hour_min": 1, "risk_merchant_multiple": Decimal(2)})
        assert flags(1, merchant(average=USDT // 2 + 1, settings=tuned), customer, tuned) == (
            ["VELOCITY_HOUR", "AMOUNT_3X_AVERAGE", "MEDIUM_AMOUNT"], 12)
        # the merchant's bar: 2x its usual 48 a day is 4 an hour
        assert flags(1, merchant(last_hour=3, usual=(48, 0), settings=tuned), None, tuned)[0] == ["MEDIUM_AMOUNT"]
        assert flags(1, merchant(last_hour=4, usual=(48, 0), settings=tuned), None, tuned)[0] == [
            "MERCHANT_VELOCITY_HOUR", "MEDIUM_AMOUNT"]

    def test_the_score_is_capped_at_100(self) -> None:
        customer = risk.CustomerStats(last_hour=10, last_day=50, day_volume=10**6 * USDT, known=False)
        scored = risk.score(20_000 * USDT, merchant(average=USDT), customer, DEFAULTS)
        assert scored.score == 100 and scored.level == "CRITICAL" and len(scored.flags) == 6


# ------------------------------------------------------------------ through the node


def sdk(node: PaymentNode, account: MerchantAccount, mode: Literal["live", "test"] = "test") -> SdkClient:
    return SdkClient(node.http, account.sdk_credential(mode))


async def pay(client: SdkClient, amount: str = "1", **body: Any) -> dict[str, Any]:
    reply = await client.create_payment(amount=amount, currency="USDT", **body)
    assert reply.status_code == 201, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


def scored(payment: dict[str, Any]) -> tuple[list[str], int]:
    return payment.get("riskFlags", []), payment.get("riskScore", 0)


async def shift(node: PaymentNode, merchant_id: uuid.UUID, by: timedelta) -> None:
    """The merchant's payments so far, moved ``by`` into the past."""
    async with node.resources.db.unit_of_work() as session:
        await session.execute(update(Payment).where(Payment.merchant_id == merchant_id)
                              .values(created_at=Payment.created_at - by))


async def payment_count(node: PaymentNode, merchant_id: uuid.UUID) -> int:
    async with node.resources.db.unit_of_work() as session:
        return int((await session.execute(select(func.count()).select_from(Payment).where(
            Payment.merchant_id == merchant_id))).scalar_one())


@pytest.fixture
def tuned(pay_node: PaymentNode) -> Iterator[Settings]:
    """The node's settings, their risk_* values put back after the test."""
    settings = pay_node.settings
    saved = {name: getattr(settings, name) for name in type(settings).model_fields if name.startswith("risk_")}
    yield settings
    for name, value in saved.items():
        setattr(settings, name, value)


class TestWindows:
    async def test_fifty_in_a_day_is_velocity_day_high_without_the_hour(self, pay_node: PaymentNode,
                                                                        resources: Resources) -> None:
        account = await make_merchant(resources)
        client, email = sdk(pay_node, account), "day@buyer.example"
        for _ in range(50):
            await pay(client, customerEmail=email)
        await shift(pay_node, account.merchant_id, timedelta(hours=2))
        assert scored(await pay(client, customerEmail=email)) == (["VELOCITY_DAY_HIGH"], 25)
        await shift(pay_node, account.merchant_id, timedelta(hours=23))  # the fifty are 25 h old now
        assert scored(await pay(client, customerEmail=email)) == ([], 0)

    async def test_the_hour_window_ends_after_an_hour(self, pay_node: PaymentNode, resources: Resources) -> None:
        account = await make_merchant(resources)
        client, email = sdk(pay_node, account), "hour@buyer.example"
        for _ in range(5):
            await pay(client, customerEmail=email)
        assert scored(await pay(client, customerEmail=email)) == (["VELOCITY_HOUR"], 15)
        await shift(pay_node, account.merchant_id, timedelta(minutes=61))
        assert scored(await pay(client, customerEmail=email)) == ([], 0)  # 6 in the day: under 20

    async def test_volume_adds_up_over_earlier_payments_and_a_payment_without_email(
            self, pay_node: PaymentNode, resources: Resources) -> None:
        account = await make_merchant(resources)
        client, email = sdk(pay_node, account), "whale@buyer.example"
        first = await pay(client, "20000", customerEmail=email)
        assert scored(first) == (["NEW_CUSTOMER_LARGE_AMOUNT", "LARGE_AMOUNT"], 35)
        assert scored(await pay(client, "20000", customerEmail=email)) == (["LARGE_AMOUNT"], 20)
        # 40,000 before + 15,000 > 50,000
        assert scored(await pay(client, "15000", customerEmail=email)) == (["DAILY_VOLUME", "LARGE_AMOUNT"], 40)
        async with pay_node.resources.db.unit_of_work() as session:  # an expired payment moved no money
            await session.execute(update(Payment).where(Payment.id == uuid.UUID(first["id"]))
                                  .values(status="expired"))
        assert scored(await pay(client, "15000", customerEmail=email)) == (["LARGE_AMOUNT"], 20)  # = 50,000
        # no e-mail: the merchant's 24 h volume (50,000 without the expired one) still counts
        assert scored(await pay(client, "15000")) == (
            ["MERCHANT_DAILY_VOLUME", "ANONYMOUS_LARGE_AMOUNT", "LARGE_AMOUNT"], 55)


class TestMerchantRules:
    async def test_payments_without_email_are_flagged_by_the_merchants_hour(self, pay_node: PaymentNode,
                                                                           resources: Resources) -> None:
        account = await make_merchant(resources)
        client = sdk(pay_node, account)
        for _ in range(30):
            assert scored(await pay(client)) == ([], 0)
        assert scored(await pay(client)) == (["MERCHANT_VELOCITY_HOUR"], 15)

    async def test_the_merchants_own_normal_raises_its_bar(self, pay_node: PaymentNode, resources: Resources,
                                                           tuned: Settings) -> None:
        tuned.risk_merchant_hour_min, tuned.risk_merchant_hour_min_high = 3, 5
        new, used = await make_merchant(resources), await make_merchant(resources)
        new_client, used_client = sdk(pay_node, new), sdk(pay_node, used)
        for _ in range(48):  # yesterday's normal: 48 a day, 2 an hour -> flags at 6 and 10 an hour
            await pay(used_client)
        await shift(pay_node, used.merchant_id, timedelta(days=2))
        new_flags, used_flags = [], []
        for _ in range(11):
            new_flags.append(scored(await pay(new_client))[0])
            used_flags.append(scored(await pay(used_client))[0])
        assert new_flags[:3] == [[]] * 3 and new_flags[3:5] == [["MERCHANT_VELOCITY_HOUR"]] * 2
        assert new_flags[5] == ["MERCHANT_VELOCITY_HOUR_HIGH"]
        assert used_flags[:6] == [[]] * 6 and used_flags[6:10] == [["MERCHANT_VELOCITY_HOUR"]] * 4
        assert used_flags[10] == ["MERCHANT_VELOCITY_HOUR_HIGH"]

    async def test_critical_without_email_blocks_and_stores_nothing(self, pay_node: PaymentNode,
                                                                    resources: Resources) -> None:
        account = await make_merchant(resources)
        client = sdk(pay_node, account)
        for _ in range(3):
            await pay(client, "10")
        blocked = await client.create_payment(amount="60000", currency="USDT")
        assert blocked.status_code == 422, blocked.text
        error = blocked.json()["error"]
        assert error["code"] == "RISK_BLOCKED" and "score 80, level CRITICAL" in error["message"]
        for flag in ("MERCHANT_DAILY_VOLUME", "ANONYMOUS_LARGE_AMOUNT", "AMOUNT_5X_AVERAGE", "LARGE_AMOUNT"):
            assert flag in error["message"]
        assert await payment_count(pay_node, account.merchant_id) == 3

    async def test_test_mode_payments_do_not_count_for_live(self, pay_node: PaymentNode,
                                                            resources: Resources) -> None:
        account = await make_merchant(resources)
        test, live, email = sdk(pay_node, account), sdk(pay_node, account, "live"), "both@buyer.example"
        for _ in range(30):
            await pay(test, customerEmail=email)
        # in live: neither the customer's 30 in the hour, nor the merchant's, nor their average of 1
        first_live = await pay(live, "100", customerEmail=email)
        assert first_live["mode"] == "live" and scored(first_live) == ([], 0)
        assert scored(await pay(live, "300")) == ([], 0)
        # test mode keeps its own counts
        assert scored(await pay(test, customerEmail=email)) == (["VELOCITY_HOUR_HIGH", "VELOCITY_DAY"], 40)
        assert scored(await pay(test, "1500", customerEmail="new@buyer.example"))[0] == [
            "MERCHANT_VELOCITY_HOUR", "NEW_CUSTOMER_LARGE_AMOUNT", "AMOUNT_5X_AVERAGE"]

    async def test_thresholds_changed_in_settings_change_the_outcome(self, pay_node: PaymentNode,
                                                                     resources: Resources, tuned: Settings) -> None:
        account = await make_merchant(resources)
        client, email = sdk(pay_node, account), "tuned@buyer.example"
        for _ in range(2):
            await pay(client, customerEmail=email)
        tuned.risk_hour_count, tuned.risk_hour_points, tuned.risk_block_score = 2, 50, 50
        blocked = await client.create_payment(amount="1", currency="USDT", customerEmail=email)
        assert blocked.status_code == 422 and blocked.json()["error"]["code"] == "RISK_BLOCKED"
        assert "score 50, level CRITICAL: VELOCITY_HOUR" in blocked.json()["error"]["message"]
        tuned.risk_block_score = 80
        assert scored(await pay(client, customerEmail=email)) == (["VELOCITY_HOUR"], 50)
        tuned.risk_hour_count = 5
        assert scored(await pay(client, customerEmail=email)) == ([], 0)
