"""Deposit addresses (CREATE2 clones) and sweeps."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.deposits import deposit_address
from chain.events import DepositSwept, Transfer
from tests.fixtures.contracts import ADDRESSES, OPERATOR, PAYERS, TREASURER, UNIT, Chain

PAYER = PAYERS[0]


def send_to_deposit(chain: Chain, address: str, amount: int) -> None:
    chain.transact(PAYER, "MockUSDT", "faucet", PAYER, amount)
    chain.transact(PAYER, "MockUSDT", "transfer", address, amount)


class TestDepositAddress:
    def test_predicted_address_equals_contract_and_deployed_clone(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        intent = contracts.intent(merchant, 10 * UNIT, UNIT)
        predicted = deposit_address(intent, contracts.domain, contracts.deployment.forwarder_implementation)
        assert predicted == contracts.deposit_address(intent)
        assert contracts.rpc_call("eth_getCode", [predicted, "latest"]) == "0x"

        send_to_deposit(contracts, predicted, 10 * UNIT)
        receipt = contracts.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())

        code = contracts.rpc_call("eth_getCode", [predicted, "latest"])
        implementation = contracts.deployment.forwarder_implementation[2:].lower()
        assert code == f"0x363d3d373d3d3d363d73{implementation}5af43d82803e903d91602b57fd5bf3"
        (swept,) = [e for e in contracts.events(receipt) if isinstance(e, DepositSwept)]
        assert swept.deposit_address == predicted.lower()

    def test_address_commits_to_every_intent_field(self, contracts: Chain) -> None:
        from dataclasses import replace

        intent = contracts.intent(contracts.new_merchant(), 10 * UNIT, UNIT)
        addresses = {
            contracts.deposit_address(i)
            for i in (
                intent, replace(intent, amount=1), replace(intent, fee=2), replace(intent, fiat_amount=3),
                replace(intent, rate=4), replace(intent, deadline=5), replace(intent, merchant_id=bytes(32)),
                replace(intent, payment_id=bytes(32)),
            )
        }
        assert len(addresses) == 8

    def test_only_the_gateway_can_move_a_clones_tokens(self, contracts: Chain) -> None:
        intent = contracts.intent(contracts.new_merchant(), UNIT)
        address = contracts.deposit_address(intent)
        send_to_deposit(contracts, address, UNIT)
        contracts.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())
        send_to_deposit(contracts, address, UNIT)
        forwarder = contracts.artifacts["OpenPayDepositForwarder"]
        data = forwarder.encode_call("forward", contracts.deployment.token, UNIT)
        before = contracts.snapshot_balances()
        try:
            contracts.send_raw(ADDRESSES[7], address, data)
        except Exception as exc:
            assert getattr(exc, "name", None) == "NotGateway"
        else:
            raise AssertionError("forward by a stranger did not revert")
        assert contracts.snapshot_balances() == before


class TestSweep:
    def sweep_one(self, chain: Chain, amount: int, fee: int, received: int) -> tuple[bytes, DepositSwept]:
        merchant = chain.new_merchant()
        intent = chain.intent(merchant, amount, fee)
        send_to_deposit(chain, chain.deposit_address(intent), received)
        receipt = chain.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())
        (event,) = [e for e in chain.events(receipt) if isinstance(e, DepositSwept)]
        assert (event.payment_id, event.merchant_id, event.amount, event.fee) == (
            intent.payment_id, merchant, amount, fee,
        )
        assert (event.fiat_amount, event.rate, event.deadline) == (intent.fiat_amount, intent.rate, intent.deadline)
        return merchant, event

    def test_exact_payment(self, contracts: Chain) -> None:
        merchant, event = self.sweep_one(contracts, 100 * UNIT, 2 * UNIT, 100 * UNIT)
        assert (event.received, event.fee_charged) == (100 * UNIT, 2 * UNIT)
        assert contracts.merchant_balance(merchant) == 98 * UNIT
        assert contracts.treasury() == 2 * UNIT
        assert contracts.token_balance(contracts.deployment.gateway) == 100 * UNIT

    def test_underpayment_credits_what_arrived_with_a_proportional_fee(self, contracts: Chain) -> None:
        merchant, event = self.sweep_one(contracts, 100 * UNIT, 3 * UNIT, 40 * UNIT)
        assert (event.received, event.fee_charged) == (40 * UNIT, 40 * UNIT * 3 // 100)
        assert contracts.merchant_balance(merchant) + contracts.treasury() == 40 * UNIT

    def test_overpayment_credits_what_arrived(self, contracts: Chain) -> None:
        merchant, event = self.sweep_one(contracts, 100 * UNIT, 3 * UNIT, 150 * UNIT)
        assert (event.received, event.fee_charged) == (150 * UNIT, 150 * UNIT * 3 // 100)
        assert contracts.merchant_balance(merchant) == 150 * UNIT - 150 * UNIT * 3 // 100

    def test_fee_rounds_down(self, contracts: Chain) -> None:
        merchant, event = self.sweep_one(contracts, 3, 1, 2)
        assert event.fee_charged == 0
        assert contracts.merchant_balance(merchant) == 2

    def test_second_deposit_is_swept_by_a_second_sweep(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        intent = contracts.intent(merchant, 10 * UNIT)
        address = contracts.deposit_address(intent)
        send_to_deposit(contracts, address, 4 * UNIT)
        contracts.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())
        send_to_deposit(contracts, address, 6 * UNIT)
        contracts.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())
        assert contracts.merchant_balance(merchant) == 10 * UNIT
        assert contracts.token_balance(address) == 0

    def test_empty_deposit_sweeps_nothing_and_deploys_nothing(self, contracts: Chain) -> None:
        intent = contracts.intent(contracts.new_merchant(), UNIT)
        receipt = contracts.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())
        assert receipt["logs"] == []
        assert contracts.rpc_call("eth_getCode", [contracts.deposit_address(intent), "latest"]) == "0x"

    def test_batch_skips_empty_and_unlisted_without_reverting(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        paid = contracts.intent(merchant, 5 * UNIT)
        empty = contracts.intent(merchant, 5 * UNIT)
        unlisted = contracts.intent(merchant, 5 * UNIT, token=contracts.deployment.oracle)
        send_to_deposit(contracts, contracts.deposit_address(paid), 5 * UNIT)
        receipt = contracts.transact(
            OPERATOR, "OpenPayGateway", "sweepBatch", [empty.as_tuple(), unlisted.as_tuple(), paid.as_tuple()]
        )
        events = contracts.events(receipt)
        assert [type(e) for e in events] == [Transfer, DepositSwept]
        assert contracts.merchant_balance(merchant) == 5 * UNIT

    def test_tokens_of_an_unlisted_token_stay_at_the_deposit_address(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        intent = contracts.intent(merchant, UNIT)
        address = contracts.deposit_address(intent)
        send_to_deposit(contracts, address, UNIT)
        contracts.transact(ADDRESSES[0], "OpenPayGateway", "setTokenAllowed", contracts.deployment.token, False)
        receipt = contracts.transact(OPERATOR, "OpenPayGateway", "sweepBatch", [intent.as_tuple()])
        assert receipt["logs"] == []
        assert contracts.token_balance(address) == UNIT
        contracts.transact(ADDRESSES[0], "OpenPayGateway", "setTokenAllowed", contracts.deployment.token, True)
        contracts.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())
        assert contracts.merchant_balance(merchant) == UNIT


class TestSweepRejects:
    def test_non_operator(self, contracts: Chain) -> None:
        intent = contracts.intent(contracts.new_merchant(), UNIT)
        send_to_deposit(contracts, contracts.deposit_address(intent), UNIT)
        for caller in (PAYER, TREASURER):
            error = contracts.expect_revert(caller, "OpenPayGateway", "sweep", intent.as_tuple())
            assert error.name == "AccessControlUnauthorizedAccount"
            error = contracts.expect_revert(caller, "OpenPayGateway", "sweepBatch", [intent.as_tuple()])
            assert error.name == "AccessControlUnauthorizedAccount"

    def test_paused(self, contracts: Chain) -> None:
        intent = contracts.intent(contracts.new_merchant(), UNIT)
        send_to_deposit(contracts, contracts.deposit_address(intent), UNIT)
        contracts.transact(OPERATOR, "OpenPayGateway", "pause")
        assert contracts.expect_revert(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple()).name == "EnforcedPause"

    def test_malformed_intent(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        for intent, name in (
            (contracts.intent(merchant, UNIT, UNIT + 1), "InvalidFee"),
            (contracts.intent(merchant, 0), "InvalidAmount"),
        ):
            send_to_deposit(contracts, contracts.deposit_address(intent), UNIT)
            assert contracts.expect_revert(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple()).name == name


class TestSweepFeeMath:
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(amount=st.integers(1, 10**27), fee_fraction=st.fractions(0, 1), received=st.integers(1, 10**27))
    def test_credited_plus_fee_equals_received(
        self, contracts: Chain, amount: int, fee_fraction: object, received: int
    ) -> None:
        fee = int(amount * fee_fraction)  # type: ignore[operator]
        treasury_before = contracts.treasury()
        gateway_before = contracts.token_balance(contracts.deployment.gateway)
        merchant = contracts.new_merchant()
        intent = contracts.intent(merchant, amount, fee)
        send_to_deposit(contracts, contracts.deposit_address(intent), received)
        contracts.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())
        fee_taken = contracts.treasury() - treasury_before
        assert fee_taken == received * fee // amount
        assert contracts.merchant_balance(merchant) + fee_taken == received
        assert contracts.token_balance(contracts.deployment.gateway) - gateway_before == received
