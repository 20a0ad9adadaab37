"""OpenPaySubscriptions: plans, subscribe, batch charges that never revert, cancel."""

from __future__ import annotations

import pytest

from chain.events import CHARGE_FAILURE_REASONS, Cancelled, Charged, ChargeFailed, Collected, PlanCreated, Subscribed
from tests.fixtures.contracts import ADDRESSES, OPERATOR, PAYERS, UNIT, Chain

DAY = 86_400
STRANGER = ADDRESSES[9]


def reason(name: str) -> int:
    return CHARGE_FAILURE_REASONS.index(name)


class Subs:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.address = chain.deployment.subscriptions
        self.merchant = chain.new_merchant()

    def plan(self, max_amount: int = 10 * UNIT, period: int = 30 * DAY, trial: int = 0, fee_bps: int = 100) -> int:
        receipt = self.chain.transact(OPERATOR, "OpenPaySubscriptions", "createPlan", self.merchant,
                                      self.chain.deployment.token, max_amount, period, trial, fee_bps)
        (event,) = self.chain.events(receipt)
        assert isinstance(event, PlanCreated)
        return event.plan_id

    def subscribe(self, subscriber: str, plan_id: int, allowance: int, balance: int) -> int:
        self.chain.transact(subscriber, "MockUSDT", "faucet", subscriber, balance)
        self.chain.transact(subscriber, "MockUSDT", "approve", self.address, allowance)
        receipt = self.chain.transact(subscriber, "OpenPaySubscriptions", "subscribe", plan_id)
        (event,) = self.chain.events(receipt)
        assert isinstance(event, Subscribed)
        assert event.subscriber == subscriber.lower()
        return event.subscription_id

    def charge(self, ids: list[int], amounts: list[int]) -> list[object]:
        receipt = self.chain.transact(OPERATOR, "OpenPaySubscriptions", "charge", ids, amounts)
        return [e for e in self.chain.events(receipt) if isinstance(e, Charged | ChargeFailed)]


@pytest.fixture
def subs(contracts: Chain) -> Subs:
    return Subs(contracts)


class TestCharge:
    def test_charge_pulls_into_gateway_and_credits_merchant(self, subs: Subs) -> None:
        chain = subs.chain
        plan = subs.plan(fee_bps=250)
        sub = subs.subscribe(PAYERS[0], plan, 100 * UNIT, 100 * UNIT)
        receipt = chain.transact(OPERATOR, "OpenPaySubscriptions", "charge", [sub], [10 * UNIT])
        events = chain.events(receipt)
        collected = [e for e in events if isinstance(e, Collected)]
        (charged,) = [e for e in events if isinstance(e, Charged)]
        assert (charged.subscription_id, charged.plan_id, charged.merchant_id) == (sub, plan, subs.merchant)
        assert (charged.amount, charged.fee, charged.period) == (10 * UNIT, UNIT // 4, 0)
        assert collected and collected[0].amount == 10 * UNIT
        assert chain.merchant_balance(subs.merchant) == 10 * UNIT - UNIT // 4
        assert chain.treasury() == UNIT // 4
        assert chain.token_balance(chain.deployment.gateway) == 10 * UNIT
        assert chain.token_balance(PAYERS[0]) == 90 * UNIT

    def test_once_per_period(self, subs: Subs) -> None:
        plan = subs.plan(period=30 * DAY)
        sub = subs.subscribe(PAYERS[0], plan, 100 * UNIT, 100 * UNIT)
        assert isinstance(subs.charge([sub], [UNIT])[0], Charged)
        (again,) = subs.charge([sub], [UNIT])
        assert isinstance(again, ChargeFailed)
        assert (again.period, again.reason) == (0, reason("already_charged"))
        subs.chain.mine(30 * DAY)
        (next_period,) = subs.charge([sub], [UNIT])
        assert isinstance(next_period, Charged) and next_period.period == 1
        assert subs.chain.merchant_balance(subs.merchant) == 2 * UNIT - 2 * UNIT // 100

    def test_trial_is_not_charged(self, subs: Subs) -> None:
        plan = subs.plan(trial=7 * DAY)
        sub = subs.subscribe(PAYERS[0], plan, 100 * UNIT, 100 * UNIT)
        (event,) = subs.charge([sub], [UNIT])
        assert isinstance(event, ChargeFailed) and event.reason == reason("not_due")
        subs.chain.mine(7 * DAY)
        assert isinstance(subs.charge([sub], [UNIT])[0], Charged)

    def test_failures_do_not_revert_the_batch(self, subs: Subs) -> None:
        chain = subs.chain
        plan = subs.plan(max_amount=10 * UNIT)
        ok = subs.subscribe(PAYERS[0], plan, 100 * UNIT, 100 * UNIT)
        poor = subs.subscribe(PAYERS[1], plan, 100 * UNIT, UNIT)
        stingy = subs.subscribe(PAYERS[2], plan, 10 * UNIT, 100 * UNIT)
        chain.transact(PAYERS[2], "MockUSDT", "approve", chain.deployment.subscriptions, UNIT)
        too_much = subs.subscribe(PAYERS[3], plan, 100 * UNIT, 100 * UNIT)
        cancelled = subs.subscribe(PAYERS[4], plan, 100 * UNIT, 100 * UNIT)
        chain.transact(PAYERS[4], "OpenPaySubscriptions", "cancel", cancelled)
        unknown = 999

        events = subs.charge([ok, poor, stingy, too_much, cancelled, unknown],
                             [5 * UNIT, 5 * UNIT, 5 * UNIT, 10 * UNIT + 1, UNIT, UNIT])
        assert isinstance(events[0], Charged)
        failures = [(e.subscription_id, e.reason) for e in events[1:] if isinstance(e, ChargeFailed)]
        assert failures == [
            (poor, reason("insufficient_balance")),
            (stingy, reason("insufficient_allowance")),
            (too_much, reason("invalid_amount")),
            (cancelled, reason("not_active")),
            (unknown, reason("not_active")),
        ]
        assert chain.token_balance(chain.deployment.gateway) == 5 * UNIT
        assert chain.token_balance(PAYERS[1]) == UNIT

    def test_delisted_token_fails_the_charge(self, subs: Subs) -> None:
        sub = subs.subscribe(PAYERS[0], subs.plan(), 100 * UNIT, 100 * UNIT)
        subs.chain.transact(ADDRESSES[0], "OpenPayGateway", "setTokenAllowed", subs.chain.deployment.token, False)
        (event,) = subs.charge([sub], [UNIT])
        assert isinstance(event, ChargeFailed) and event.reason == reason("token_not_allowed")

    def test_rejects_mismatched_lengths_and_non_operator(self, subs: Subs) -> None:
        sub = subs.subscribe(PAYERS[0], subs.plan(), 100 * UNIT, 100 * UNIT)
        chain = subs.chain
        assert chain.expect_revert(OPERATOR, "OpenPaySubscriptions", "charge", [sub], []).name == "LengthMismatch"
        error = chain.expect_revert(STRANGER, "OpenPaySubscriptions", "charge", [sub], [UNIT])
        assert error.name == "AccessControlUnauthorizedAccount"

    def test_paused_gateway_reverts_the_charge(self, subs: Subs) -> None:
        sub = subs.subscribe(PAYERS[0], subs.plan(), 100 * UNIT, 100 * UNIT)
        subs.chain.transact(OPERATOR, "OpenPayGateway", "pause")
        assert subs.chain.expect_revert(OPERATOR, "OpenPaySubscriptions", "charge", [sub], [UNIT]).name == (
            "EnforcedPause"
        )


class TestPlansAndSubscribe:
    def test_create_plan_rejects(self, subs: Subs) -> None:
        chain, token = subs.chain, subs.chain.deployment.token
        for args in ((0, DAY, 0, 0), (UNIT, 0, 0, 0), (UNIT, DAY, 0, 10_001)):
            error = chain.expect_revert(OPERATOR, "OpenPaySubscriptions", "createPlan", subs.merchant, token, *args)
            assert error.name == "InvalidPlan"
        args = (subs.merchant, token, UNIT, DAY, 0, 0)
        error = chain.expect_revert(STRANGER, "OpenPaySubscriptions", "createPlan", *args)
        assert error.name == "AccessControlUnauthorizedAccount"

    def test_subscribe_needs_allowance_for_one_period(self, subs: Subs) -> None:
        plan = subs.plan(max_amount=10 * UNIT)
        subs.chain.transact(PAYERS[0], "MockUSDT", "approve", subs.address, 10 * UNIT - 1)
        error = subs.chain.expect_revert(PAYERS[0], "OpenPaySubscriptions", "subscribe", plan)
        assert error.name == "InsufficientAllowance"
        assert error.args_decoded == (10 * UNIT - 1, 10 * UNIT)

    def test_inactive_or_unknown_plan(self, subs: Subs) -> None:
        plan = subs.plan()
        subs.chain.transact(PAYERS[0], "MockUSDT", "approve", subs.address, 100 * UNIT)
        subs.chain.transact(OPERATOR, "OpenPaySubscriptions", "setPlanActive", plan, False)
        assert subs.chain.expect_revert(PAYERS[0], "OpenPaySubscriptions", "subscribe", plan).name == "PlanNotActive"
        assert subs.chain.expect_revert(PAYERS[0], "OpenPaySubscriptions", "subscribe", 77).name == "PlanNotActive"


class TestCancel:
    def test_by_subscriber_or_operator(self, subs: Subs) -> None:
        plan = subs.plan()
        first = subs.subscribe(PAYERS[0], plan, 100 * UNIT, 100 * UNIT)
        second = subs.subscribe(PAYERS[1], plan, 100 * UNIT, 100 * UNIT)
        (event,) = subs.chain.events(subs.chain.transact(PAYERS[0], "OpenPaySubscriptions", "cancel", first))
        assert isinstance(event, Cancelled) and event.by == PAYERS[0].lower()
        subs.chain.transact(OPERATOR, "OpenPaySubscriptions", "cancel", second)
        (failed,) = subs.charge([second], [UNIT])
        assert isinstance(failed, ChargeFailed) and failed.reason == reason("not_active")

    def test_rejects_strangers_and_double_cancel(self, subs: Subs) -> None:
        sub = subs.subscribe(PAYERS[0], subs.plan(), 100 * UNIT, 100 * UNIT)
        assert subs.chain.expect_revert(STRANGER, "OpenPaySubscriptions", "cancel", sub).name == "NotAuthorized"
        subs.chain.transact(PAYERS[0], "OpenPaySubscriptions", "cancel", sub)
        error = subs.chain.expect_revert(PAYERS[0], "OpenPaySubscriptions", "cancel", sub)
        assert error.name == "SubscriptionNotActive"
