"""OpenPayGateway.pay: signed intents pulled from the payer's allowance."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.events import PaymentReceived
from tests.fixtures.contracts import ADDRESSES, KEYS, OPERATOR, PAYERS, TREASURER, UNIT, Chain

PAYER = PAYERS[0]


class TestPay:
    def test_pay_credits_merchant_and_treasury_and_emits(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        contracts.fund(PAYER, 100 * UNIT)
        intent = contracts.intent(merchant, 100 * UNIT, 2 * UNIT, fiat_amount=3_000_000, rate=300 * 10**8)
        receipt = contracts.pay(PAYER, intent)

        assert contracts.merchant_balance(merchant) == 98 * UNIT
        assert contracts.treasury() == 2 * UNIT
        assert contracts.token_balance(contracts.deployment.gateway) == 100 * UNIT
        assert contracts.token_balance(PAYER) == 0
        assert contracts.call("OpenPayGateway", "isPaid", intent.payment_id) is True
        (event,) = [e for e in contracts.events(receipt) if isinstance(e, PaymentReceived)]
        assert event.payment_id == intent.payment_id
        assert event.merchant_id == merchant
        assert event.payer == PAYER.lower()
        assert event.token == contracts.deployment.token.lower()
        assert (event.amount, event.fee) == (100 * UNIT, 2 * UNIT)
        assert (event.fiat_amount, event.rate) == (3_000_000, 300 * 10**8)
        assert event.address == contracts.deployment.gateway.lower()

    def test_anyone_may_pay_a_signed_intent(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        contracts.fund(PAYERS[3], 5 * UNIT)
        contracts.pay(PAYERS[3], contracts.intent(merchant, 5 * UNIT, 0))
        assert contracts.merchant_balance(merchant) == 5 * UNIT

    def test_fee_equal_to_amount_goes_to_the_treasury(self, contracts: Chain) -> None:
        merchant = contracts.new_merchant()
        contracts.fund(PAYER, UNIT)
        contracts.pay(PAYER, contracts.intent(merchant, UNIT, UNIT))
        assert contracts.merchant_balance(merchant) == 0
        assert contracts.treasury() == UNIT


class TestPayRejects:
    @pytest.fixture
    def funded(self, contracts: Chain) -> Chain:
        contracts.new_merchant()
        contracts.fund(PAYER, 100 * UNIT)
        return contracts

    def test_signature_from_a_non_operator(self, funded: Chain) -> None:
        intent = funded.intent(funded.merchants[0], UNIT)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent, KEYS[5]))
        assert error.name == "InvalidSigner"
        assert error.args_decoded == (ADDRESSES[5].lower(),)

    def test_altered_intent(self, funded: Chain) -> None:
        intent = funded.intent(funded.merchants[0], 10 * UNIT, UNIT)
        signature = funded.sign(intent)
        for altered in (
            replace(intent, amount=UNIT),
            replace(intent, fee=0),
            replace(intent, fiat_amount=1),
            replace(intent, rate=1),
            replace(intent, merchant_id=bytes(32)),
            replace(intent, deadline=intent.deadline + 1),
        ):
            error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", altered.as_tuple(), signature)
            assert error.name == "InvalidSigner"

    def test_replayed_payment_id(self, funded: Chain) -> None:
        intent = funded.intent(funded.merchants[0], UNIT)
        funded.pay(PAYER, intent)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent))
        assert error.name == "PaymentAlreadyUsed"
        assert error.args_decoded == (intent.payment_id,)

    def test_expired_intent(self, funded: Chain) -> None:
        intent = funded.intent(funded.merchants[0], UNIT, deadline=funded.now() - 1)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent))
        assert error.name == "IntentExpired"

    def test_paused_gateway(self, funded: Chain) -> None:
        funded.transact(OPERATOR, "OpenPayGateway", "pause")
        intent = funded.intent(funded.merchants[0], UNIT)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent))
        assert error.name == "EnforcedPause"
        funded.transact(OPERATOR, "OpenPayGateway", "unpause")
        funded.pay(PAYER, intent)

    def test_unlisted_token(self, funded: Chain) -> None:
        intent = funded.intent(funded.merchants[0], UNIT, token=funded.deployment.oracle)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent))
        assert error.name == "TokenNotAllowed"

    def test_delisted_token(self, funded: Chain) -> None:
        funded.transact(ADDRESSES[0], "OpenPayGateway", "setTokenAllowed", funded.deployment.token, False)
        intent = funded.intent(funded.merchants[0], UNIT)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent))
        assert error.name == "TokenNotAllowed"

    def test_fee_above_amount(self, funded: Chain) -> None:
        intent = funded.intent(funded.merchants[0], UNIT, UNIT + 1)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent))
        assert error.name == "InvalidFee"

    def test_zero_amount(self, funded: Chain) -> None:
        intent = funded.intent(funded.merchants[0], 0)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent))
        assert error.name == "InvalidAmount"

    def test_malformed_signature(self, funded: Chain) -> None:
        intent = funded.intent(funded.merchants[0], UNIT)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent)[:64])
        assert error.name == "ECDSAInvalidSignatureLength"

    def test_allowance_too_small(self, funded: Chain) -> None:
        intent = funded.intent(funded.merchants[0], 101 * UNIT)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent))
        assert error.name == "ERC20InsufficientAllowance"

    def test_balance_too_small(self, funded: Chain) -> None:
        funded.transact(PAYER, "MockUSDT", "approve", funded.deployment.gateway, 1000 * UNIT)
        intent = funded.intent(funded.merchants[0], 101 * UNIT)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent))
        assert error.name == "ERC20InsufficientBalance"

    def test_operator_signature_after_role_revoked(self, funded: Chain) -> None:
        role = funded.call("OpenPayGateway", "OPERATOR_ROLE")
        funded.transact(ADDRESSES[0], "OpenPayGateway", "revokeRole", role, OPERATOR)
        intent = funded.intent(funded.merchants[0], UNIT)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent))
        assert error.name == "InvalidSigner"

    def test_treasurer_signature(self, funded: Chain) -> None:
        intent = funded.intent(funded.merchants[0], UNIT)
        error = funded.expect_revert(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), funded.sign(intent, KEYS[2]))
        assert error.name == "InvalidSigner"
        assert error.args_decoded == (TREASURER.lower(),)


class TestFeeMath:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(amount=st.integers(1, 10**30), fee_fraction=st.fractions(0, 1))
    def test_credited_plus_fee_equals_pulled(self, contracts: Chain, amount: int, fee_fraction: object) -> None:
        fee = int(amount * fee_fraction)  # type: ignore[operator]
        merchant = contracts.new_merchant()
        before = (contracts.treasury(), contracts.token_balance(contracts.deployment.gateway))
        contracts.fund(PAYER, amount)
        contracts.pay(PAYER, contracts.intent(merchant, amount, fee))
        credited = contracts.merchant_balance(merchant)
        fee_taken = contracts.treasury() - before[0]
        pulled = contracts.token_balance(contracts.deployment.gateway) - before[1]
        assert credited + fee_taken == pulled == amount
        assert fee_taken == fee


class TestSequencedPaymentIds:
    """Payment ids with a sequence number share 256-bit bitmap words (cheaper replay protection)."""

    def test_replay_of_a_sequenced_id_and_reuse_of_its_sequence_are_rejected(self, contracts: Chain) -> None:
        import uuid

        from chain.intents import payment_id, payment_id_parts

        merchant = contracts.new_merchant()
        contracts.fund(PAYER, 100 * UNIT)
        first = replace(contracts.intent(merchant, UNIT), payment_id=payment_id(uuid.uuid4(), 513))
        neighbour = replace(contracts.intent(merchant, UNIT), payment_id=payment_id(uuid.uuid4(), 514))
        assert payment_id_parts(first.payment_id)[0] == 513
        contracts.pay(PAYER, first)
        contracts.pay(PAYER, neighbour)
        assert contracts.call("OpenPayGateway", "isPaid", first.payment_id) is True
        assert contracts.call("OpenPayGateway", "isPaid", payment_id(uuid.uuid4(), 515)) is False

        for replayed in (first, replace(first, payment_id=payment_id(uuid.uuid4(), 513))):
            error = contracts.expect_revert(PAYER, "OpenPayGateway", "pay", replayed.as_tuple(),
                                            contracts.sign(replayed))
            assert error.name == "PaymentAlreadyUsed"
        assert contracts.merchant_balance(merchant) == 2 * UNIT
