"""Random sequences of every money-moving call keep the books balanced.

After every step: each merchant balance and the treasury equal the model's, and
sum(merchant balances) + treasury == token.balanceOf(gateway). 45 examples x up to 50 steps,
asserted >= 2,000 steps per run (HYPOTHESIS_STATEFUL_EXAMPLES overrides the example count).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from chain.intents import PaymentIntent
from tests.fixtures.contracts import ADDRESSES, OPERATOR, PAYERS, TREASURER, UNIT, Chain, Reverted

EXAMPLES = int(os.environ.get("HYPOTHESIS_STATEFUL_EXAMPLES", "45"))
STEPS = 50
MAX_UINT = 2**256 - 1
PERIOD = 30 * 86_400
SUB_MAX = 50 * UNIT

amounts = st.integers(1, 1000 * UNIT)
fractions = st.fractions(0, 1)


checks: list[int] = []


def build_machine(chain: Chain) -> type[RuleBasedStateMachine]:
    gateway = chain.deployment.gateway
    token = chain.deployment.token
    merchants = [chain.new_merchant() for _ in range(3)]
    admin = ADDRESSES[0]

    # one-time setup kept by every example's snapshot
    for payer in PAYERS[:4]:
        chain.transact(payer, "MockUSDT", "faucet", payer, 10**12 * UNIT)
        chain.transact(payer, "MockUSDT", "approve", gateway, MAX_UINT)
        chain.transact(payer, "MockUSDT", "approve", chain.deployment.subscriptions, MAX_UINT)
    for i, merchant in enumerate(merchants):
        chain.transact(admin, "OpenPayGateway", "setPayoutAddress", merchant, ADDRESSES[5 + i])
    plan_receipt = chain.transact(OPERATOR, "OpenPaySubscriptions", "createPlan", merchants[0], token,
                                  SUB_MAX, PERIOD, 0, 150)
    plan_id = int(plan_receipt["logs"][0]["topics"][1], 16)
    subscriptions = []
    for payer in PAYERS[:2]:
        receipt = chain.transact(payer, "OpenPaySubscriptions", "subscribe", plan_id)
        subscriptions.append(int(receipt["logs"][0]["topics"][1], 16))
    gateway_start = chain.token_balance(gateway)
    balance_calls = [chain._eth_call("OpenPayGateway", "balanceOf", m, token) for m in merchants] + [
        chain._eth_call("OpenPayGateway", "treasuryBalance", token),
        chain._eth_call("MockUSDT", "balanceOf", gateway),
    ]

    class Books(RuleBasedStateMachine):
        deposits = Bundle("deposits")

        def __init__(self) -> None:
            super().__init__()
            self.snapshot = chain.rpc_call("evm_snapshot")
            self.balances = dict.fromkeys(merchants, 0)
            self.treasury = 0
            self.charged_period: dict[int, int] = {}
            self.period = 0

        def teardown(self) -> None:
            chain.rpc_call("evm_revert", [self.snapshot])

        # ------------------------------------------------------------ inflows

        @rule(m=st.sampled_from(merchants), payer=st.sampled_from(PAYERS[:4]), amount=amounts, f=fractions)
        def pay(self, m: bytes, payer: str, amount: int, f: Any) -> None:
            fee = int(amount * f)
            chain.pay(payer, chain.intent(m, amount, fee))
            self.balances[m] += amount - fee
            self.treasury += fee

        @rule(target=deposits, m=st.sampled_from(merchants), amount=amounts, f=fractions,
              kind=st.sampled_from(["under", "exact", "over", "none"]), delta=st.integers(1, 10 * UNIT))
        def deposit(self, m: bytes, amount: int, f: Any, kind: str, delta: int) -> PaymentIntent:
            intent = chain.intent(m, amount, int(amount * f))
            received = {"under": max(amount - delta, 1), "exact": amount, "over": amount + delta, "none": 0}[kind]
            if received:
                chain.transact(PAYERS[3], "MockUSDT", "transfer", chain.deposit_address(intent), received)
            return intent

        @rule(intents=st.lists(deposits, min_size=1, max_size=4, unique_by=lambda i: i.payment_id))
        def sweep(self, intents: list[PaymentIntent]) -> None:
            held = [chain.token_balance(chain.deposit_address(i)) for i in intents]
            chain.transact(OPERATOR, "OpenPayGateway", "sweepBatch", [i.as_tuple() for i in intents])
            for intent, received in zip(intents, held, strict=True):
                fee = received * intent.fee // intent.amount
                self.balances[intent.merchant_id] += received - fee
                self.treasury += fee

        @rule(sub=st.sampled_from([0, 1]), amount=st.integers(0, SUB_MAX + UNIT))
        def charge(self, sub: int, amount: int) -> None:
            sub_id = subscriptions[sub]
            chain.transact(OPERATOR, "OpenPaySubscriptions", "charge", [sub_id], [amount])
            if 0 < amount <= SUB_MAX and self.charged_period.get(sub_id) != self.period:
                self.charged_period[sub_id] = self.period
                fee = amount * 150 // 10_000
                self.balances[merchants[0]] += amount - fee
                self.treasury += fee

        @rule()
        def next_period(self) -> None:
            chain.mine(PERIOD)
            self.period += 1

        # ------------------------------------------------------------ outflows

        def _debit(self, m: bytes, f: Any, over: bool) -> int:
            return self.balances[m] + 1 if over else int(self.balances[m] * f)

        def _attempt(self, sender: str, fn: str, *args: Any) -> bool:
            try:
                chain.transact(sender, "OpenPayGateway", fn, *args)
            except Reverted as exc:
                assert exc.name in ("InsufficientBalance", "InvalidAmount"), exc
                return False
            return True

        @rule(m=st.sampled_from(merchants), f=fractions, over=st.booleans())
        def withdraw(self, m: bytes, f: Any, over: bool) -> None:
            amount = self._debit(m, f, over)
            if self._attempt(OPERATOR, "withdraw", m, token, amount):
                self.balances[m] -= amount

        @rule(m=st.sampled_from(merchants), f=fractions, over=st.booleans(), to=st.sampled_from(PAYERS[:4]))
        def refund(self, m: bytes, f: Any, over: bool, to: str) -> None:
            amount = self._debit(m, f, over)
            if self._attempt(OPERATOR, "refund", bytes(32), m, token, to, amount):
                self.balances[m] -= amount

        @rule(m=st.sampled_from(merchants), f=fractions, over=st.booleans())
        def settle(self, m: bytes, f: Any, over: bool) -> None:
            amount = self._debit(m, f, over)
            if self._attempt(TREASURER, "settle", m, token, amount, bytes(32), 300 * 10**8, 1):
                self.balances[m] -= amount
                self.treasury += amount

        @rule(f=fractions, over=st.booleans())
        def withdraw_treasury(self, f: Any, over: bool) -> None:
            amount = self.treasury + 1 if over else int(self.treasury * f)
            if self._attempt(TREASURER, "withdrawTreasury", token, ADDRESSES[9], amount):
                self.treasury -= amount

        # ------------------------------------------------------------ the invariant

        @invariant()
        def books_balance(self) -> None:
            checks.append(1)
            *onchain, treasury, held = (int(r, 16) for r in chain.rpc.batch(balance_calls))
            assert onchain == [self.balances[m] for m in merchants]
            assert treasury == self.treasury
            assert sum(onchain) + treasury == held - gateway_start

    return Books


def test_books_always_balance(contracts: Chain) -> None:
    machine = build_machine(contracts)
    examples = steps = 0
    # hypothesis draws each example's length, so keep running until the step budget is spent
    while steps < 2000 and examples < 10 * EXAMPLES:
        before = len(checks)
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
        examples += EXAMPLES
        steps += len(checks) - before - EXAMPLES  # the invariant also runs before each example's first step
        if EXAMPLES < 45:
            break
    print(f"stateful: {steps} steps over {examples} examples")
    assert steps >= 2000 or EXAMPLES < 45
