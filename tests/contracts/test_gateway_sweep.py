"""Deposit addresses (CREATE2 of a self-destructing constructor) and sweeps."""

from __future__ import annotations

from dataclasses import replace

from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.compile import project_root
from chain.deposits import DEPOSIT_INITCODE, DEPOSIT_INITCODE_HASH, create2_address, deposit_address
from chain.events import DepositSwept, Transfer
from tests.fixtures.contracts import ADDRESSES, OPERATOR, PAYERS, TREASURER, UNIT, Chain

PAYER = PAYERS[0]
ADMIN = ADDRESSES[0]
TRANSFER = "a9059cbb"


def send_to_deposit(chain: Chain, address: str, amount: int) -> None:
    chain.transact(PAYER, "MockUSDT", "faucet", PAYER, amount)
    chain.transact(PAYER, "MockUSDT", "transfer", address, amount)


def assert_no_account(chain: Chain, address: str) -> None:
    """Nothing stays at a swept deposit address: no code, nonce 0 (the account was deleted)."""
    assert chain.rpc_call("eth_getCode", [address, "latest"]) == "0x"
    assert int(chain.rpc_call("eth_getTransactionCount", [address, "latest"]), 16) == 0


def install(chain: Chain, address: str, runtime: bytes) -> str:
    chain.rpc_call("anvil_setCode", [address, "0x" + runtime.hex()])
    return to_checksum_address(address)


def fake_token(chain: Chain, address: str, *, transfer_returns: bytes | None) -> str:
    """An allowlisted "token" whose balanceOf is 1 for everyone and whose transfer moves nothing
    and returns ``transfer_returns`` (None: no return data, like USDT on Ethereum)."""
    is_transfer = bytes.fromhex("5f3560e01c63" + TRANSFER + "14")  # calldataload(0) >> 224 == transfer
    return_one = bytes.fromhex("60015f5260205ff3")
    head = is_transfer + bytes([0x60, len(is_transfer) + 3 + len(return_one), 0x57]) + return_one
    if transfer_returns is None:
        runtime = head + bytes.fromhex("5b00")
    else:
        word = transfer_returns.ljust(32, b"\0")
        runtime = head + bytes.fromhex("5b7f") + word + bytes.fromhex("5f52") + bytes(
            [0x60, len(transfer_returns)]) + bytes.fromhex("5ff3")
    token = install(chain, address, runtime)
    chain.transact(ADMIN, "OpenPayGateway", "setTokenAllowed", token, True)
    return token


def attacker_factory(chain: Chain, address: str, token: str, amount: int) -> str:
    """A contract offering the same ``depositContext()`` as the gateway (answering ``token``,
    ``amount``) that CREATE2s the deposit init code with any salt it is called with."""
    context = bytes.fromhex("5f545f52600154602052" "60405ff3")  # return (sload(0), sload(1))
    head = bytes.fromhex("366020146000" "57")  # calldatasize == 32 -> create
    create_at = len(head) + len(context)
    size = len(DEPOSIT_INITCODE)
    create = bytes.fromhex("5b") + bytes([0x60, size, 0x60, 0]) + bytes.fromhex("5f39" "5f35") + bytes(
        [0x60, size]) + bytes.fromhex("5f5ff5" "5f52" "60205ff3")
    runtime = bytearray(head + context + create + DEPOSIT_INITCODE)
    runtime[5] = create_at
    runtime[create_at + 4] = create_at + len(create)  # codecopy offset of the init code
    factory = install(chain, address, bytes(runtime))
    chain.rpc_call("anvil_setStorageAt", [factory, "0x0", "0x" + bytes.fromhex(token[2:]).rjust(32, b"\0").hex()])
    chain.rpc_call("anvil_setStorageAt", [factory, "0x1", "0x" + amount.to_bytes(32, "big").hex()])
    return factory


class TestDepositAddress:
    def test_predicted_address_is_where_the_sweep_takes_the_money_from(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        intent = contracts.intent(merchant, 10 * UNIT, UNIT)
        predicted = deposit_address(intent, contracts.domain, contracts.deployment.forwarder_implementation)
        assert predicted == contracts.deposit_address(intent)
        assert predicted == deposit_address(intent, contracts.domain)  # the constant init code hash
        assert_no_account(contracts, predicted)

        send_to_deposit(contracts, predicted, 10 * UNIT)
        receipt = contracts.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())

        moved, swept = contracts.events(receipt)
        assert isinstance(moved, Transfer) and isinstance(swept, DepositSwept)
        gateway = contracts.deployment.gateway.lower()
        assert (moved.from_address, moved.to_address, moved.value) == (predicted.lower(), gateway, 10 * UNIT)
        assert swept.deposit_address == predicted.lower()
        assert contracts.token_balance(predicted) == 0
        assert_no_account(contracts, predicted)

    def test_init_code_hash_matches_the_gateway_and_the_deployment(self, contracts: Chain) -> None:
        assert contracts.call("OpenPayGateway", "DEPOSIT_INITCODE_HASH") == DEPOSIT_INITCODE_HASH
        assert contracts.deployment.forwarder_implementation == "0x" + DEPOSIT_INITCODE_HASH.hex()
        source = (project_root() / "contracts" / "OpenPayDepositForwarder.sol").read_text()
        assert DEPOSIT_INITCODE.hex() in source
        # outside a sweep the constructor's callback answers nothing
        token, amount = contracts.call("OpenPayGateway", "depositContext")
        assert (int(token, 16), amount) == (0, 0)

    def test_address_commits_to_every_intent_field(self, contracts: Chain) -> None:
        intent = contracts.intent(contracts.new_merchant(), 10 * UNIT, UNIT)
        variants = (
            intent, replace(intent, amount=1), replace(intent, fee=2), replace(intent, fiat_amount=3),
            replace(intent, rate=4), replace(intent, deadline=5), replace(intent, merchant_id=bytes(32)),
            replace(intent, payment_id=bytes(32)), replace(intent, token=contracts.deployment.oracle),
        )
        addresses = {contracts.deposit_address(i) for i in variants}
        assert addresses == {deposit_address(i, contracts.domain) for i in variants}
        assert len(addresses) == 9

    def test_nobody_but_the_gateway_moves_a_deposits_tokens(self, contracts: Chain) -> None:
        intent = contracts.intent(contracts.new_merchant(), UNIT)
        address = contracts.deposit_address(intent)
        send_to_deposit(contracts, address, UNIT)
        stranger = ADDRESSES[7]
        before = contracts.snapshot_balances()
        # a plain call: there is no code at a deposit address
        contracts.send_raw(stranger, address, bytes.fromhex(TRANSFER) + bytes(12) + bytes.fromhex(stranger[2:])
                           + UNIT.to_bytes(32, "big"))
        # the same init code and salt from another creator lands somewhere else
        salt = intent.digest(contracts.domain)
        factory = attacker_factory(contracts, "0x" + "a7" * 20, contracts.deployment.token, 0)
        elsewhere = create2_address(factory, salt, DEPOSIT_INITCODE_HASH)
        assert elsewhere != address
        created = contracts.rpc_call("eth_call", [{"from": stranger, "to": factory, "data": "0x" + salt.hex()}])
        assert to_checksum_address("0x" + created[-40:]) == elsewhere  # the factory does run the init code
        attacker_factory(contracts, factory, contracts.deployment.token, UNIT)
        contracts.send_raw(stranger, factory, salt)
        assert contracts.snapshot_balances() == before
        assert contracts.token_balance(address) == UNIT

    def test_a_token_transfer_reporting_failure_reverts_the_sweep(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        for returns in (bytes(32), b"\x01\x01", b"\x02"):
            token = fake_token(contracts, "0x" + "f0" * 20, transfer_returns=returns)
            intent = contracts.intent(merchant, UNIT, token=token)
            error = contracts.expect_revert(OPERATOR, "OpenPayGateway", "sweepBatch", [intent.as_tuple()])
            assert error.name == "DepositForwardFailed"
            assert [a.lower() for a in error.args_decoded] == [contracts.deposit_address(intent).lower()]
            assert contracts.merchant_balance(merchant, token) == 0

    def test_a_token_returning_true_or_nothing_is_swept(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        for address, returns in (("0x" + "f1" * 20, None), ("0x" + "f2" * 20, (1).to_bytes(32, "big"))):
            token = fake_token(contracts, address, transfer_returns=returns)
            intent = contracts.intent(merchant, 2, token=token)
            receipt = contracts.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())
            (swept,) = contracts.events(receipt)
            assert isinstance(swept, DepositSwept) and swept.received == 1
            assert contracts.merchant_balance(merchant, token) == 1


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
        assert_no_account(contracts, address)
        send_to_deposit(contracts, address, 6 * UNIT)
        receipt = contracts.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())
        (swept,) = [e for e in contracts.events(receipt) if isinstance(e, DepositSwept)]
        assert (swept.deposit_address, swept.received) == (address.lower(), 6 * UNIT)
        assert contracts.merchant_balance(merchant) == 10 * UNIT
        assert contracts.token_balance(address) == 0
        assert_no_account(contracts, address)
        send_to_deposit(contracts, address, UNIT)  # and a third time, in a batch
        contracts.transact(OPERATOR, "OpenPayGateway", "sweepBatch", [intent.as_tuple()])
        assert contracts.merchant_balance(merchant) == 11 * UNIT

    def test_the_same_intent_twice_in_a_batch_sweeps_once(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        intent = contracts.intent(merchant, 10 * UNIT, UNIT)
        address = contracts.deposit_address(intent)
        send_to_deposit(contracts, address, 10 * UNIT)
        receipt = contracts.transact(OPERATOR, "OpenPayGateway", "sweepBatch", [intent.as_tuple()] * 2)
        assert [type(e) for e in contracts.events(receipt)] == [Transfer, DepositSwept]
        assert contracts.merchant_balance(merchant) == 9 * UNIT
        assert_no_account(contracts, address)

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
