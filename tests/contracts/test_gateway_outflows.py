"""Withdrawals, refunds, settlements, treasury withdrawals and administration."""

from __future__ import annotations

import pytest

from chain.events import PayoutAddressSet, Refunded, SettlementInitiated, TreasuryWithdrawal, Withdrawal
from tests.fixtures.contracts import ADDRESSES, OPERATOR, PAYERS, TREASURER, UNIT, Chain

ADMIN = ADDRESSES[0]
PAYOUT = ADDRESSES[8]
STRANGER = ADDRESSES[9]
ZERO = "0x" + "00" * 20


@pytest.fixture
def funded(contracts: Chain) -> Chain:
    """One merchant with 98 USDT credited and 2 USDT of fees in the treasury."""
    merchant = contracts.new_merchant()
    contracts.fund(PAYERS[0], 100 * UNIT)
    contracts.pay(PAYERS[0], contracts.intent(merchant, 100 * UNIT, 2 * UNIT))
    return contracts


class TestWithdraw:
    def test_goes_to_the_registered_payout_address(self, funded: Chain) -> None:
        merchant = funded.merchants[0]
        receipt = funded.transact(ADMIN, "OpenPayGateway", "setPayoutAddress", merchant, PAYOUT)
        assert isinstance(funded.events(receipt)[0], PayoutAddressSet)
        receipt = funded.transact(OPERATOR, "OpenPayGateway", "withdraw", merchant, funded.deployment.token, 50 * UNIT)
        assert funded.token_balance(PAYOUT) == 50 * UNIT
        assert funded.merchant_balance(merchant) == 48 * UNIT
        event = funded.events(receipt)[-1]
        assert isinstance(event, Withdrawal)
        assert (event.merchant_id, event.to, event.amount) == (merchant, PAYOUT.lower(), 50 * UNIT)

    def test_rejects_without_payout_address(self, funded: Chain) -> None:
        error = funded.expect_revert(OPERATOR, "OpenPayGateway", "withdraw", funded.merchants[0],
                                     funded.deployment.token, UNIT)
        assert error.name == "PayoutAddressNotSet"

    @pytest.mark.parametrize(("amount", "name"), [(98 * UNIT + 1, "InsufficientBalance"), (0, "InvalidAmount")])
    def test_rejects_bad_amounts(self, funded: Chain, amount: int, name: str) -> None:
        funded.transact(ADMIN, "OpenPayGateway", "setPayoutAddress", funded.merchants[0], PAYOUT)
        error = funded.expect_revert(OPERATOR, "OpenPayGateway", "withdraw", funded.merchants[0],
                                     funded.deployment.token, amount)
        assert error.name == name

    def test_rejects_other_merchants_balance(self, funded: Chain) -> None:
        other = funded.new_merchant()
        funded.transact(ADMIN, "OpenPayGateway", "setPayoutAddress", other, PAYOUT)
        error = funded.expect_revert(OPERATOR, "OpenPayGateway", "withdraw", other, funded.deployment.token, UNIT)
        assert error.name == "InsufficientBalance"

    def test_rejects_non_operator_and_paused(self, funded: Chain) -> None:
        funded.transact(ADMIN, "OpenPayGateway", "setPayoutAddress", funded.merchants[0], PAYOUT)
        args = (funded.merchants[0], funded.deployment.token, UNIT)
        for caller in (STRANGER, TREASURER, PAYOUT):
            error = funded.expect_revert(caller, "OpenPayGateway", "withdraw", *args)
            assert error.name == "AccessControlUnauthorizedAccount"
        funded.transact(OPERATOR, "OpenPayGateway", "pause")
        assert funded.expect_revert(OPERATOR, "OpenPayGateway", "withdraw", *args).name == "EnforcedPause"


class TestPayoutAddress:
    def test_only_admin_sets_it(self, funded: Chain) -> None:
        for caller in (OPERATOR, STRANGER):
            error = funded.expect_revert(caller, "OpenPayGateway", "setPayoutAddress", funded.merchants[0], STRANGER)
            assert error.name == "AccessControlUnauthorizedAccount"
        assert funded.call("OpenPayGateway", "payoutAddress", funded.merchants[0]) == ZERO

    def test_rejects_zero_address(self, funded: Chain) -> None:
        error = funded.expect_revert(ADMIN, "OpenPayGateway", "setPayoutAddress", funded.merchants[0], ZERO)
        assert error.name == "ZeroAddress"


class TestRefund:
    def test_moves_merchant_funds_to_any_address(self, funded: Chain) -> None:
        merchant = funded.merchants[0]
        payment_id = bytes(31) + b"\x07"
        receipt = funded.transact(OPERATOR, "OpenPayGateway", "refund", payment_id, merchant,
                                  funded.deployment.token, STRANGER, 30 * UNIT)
        assert funded.token_balance(STRANGER) == 30 * UNIT
        assert funded.merchant_balance(merchant) == 68 * UNIT
        event = funded.events(receipt)[-1]
        assert isinstance(event, Refunded)
        assert (event.payment_id, event.to, event.amount) == (payment_id, STRANGER.lower(), 30 * UNIT)

    @pytest.mark.parametrize(("amount", "to", "name"), [
        (98 * UNIT + 1, STRANGER, "InsufficientBalance"),
        (0, STRANGER, "InvalidAmount"),
        (UNIT, ZERO, "ZeroAddress"),
    ])
    def test_rejects(self, funded: Chain, amount: int, to: str, name: str) -> None:
        error = funded.expect_revert(OPERATOR, "OpenPayGateway", "refund", bytes(32), funded.merchants[0],
                                     funded.deployment.token, to, amount)
        assert error.name == name

    def test_rejects_non_operator_and_paused(self, funded: Chain) -> None:
        args = (bytes(32), funded.merchants[0], funded.deployment.token, STRANGER, UNIT)
        for caller in (STRANGER, TREASURER):
            error = funded.expect_revert(caller, "OpenPayGateway", "refund", *args)
            assert error.name == "AccessControlUnauthorizedAccount"
        funded.transact(OPERATOR, "OpenPayGateway", "pause")
        assert funded.expect_revert(OPERATOR, "OpenPayGateway", "refund", *args).name == "EnforcedPause"


class TestSettle:
    def test_moves_merchant_funds_to_treasury(self, funded: Chain) -> None:
        merchant = funded.merchants[0]
        ref = b"settlement-2024-001".ljust(32, b"\0")
        receipt = funded.transact(TREASURER, "OpenPayGateway", "settle", merchant, funded.deployment.token,
                                  90 * UNIT, ref, 300 * 10**8, 2_700_000)
        assert funded.merchant_balance(merchant) == 8 * UNIT
        assert funded.treasury() == 92 * UNIT
        event = funded.events(receipt)[-1]
        assert isinstance(event, SettlementInitiated)
        assert (event.settlement_ref, event.amount, event.rate, event.fiat_amount) == (
            ref, 90 * UNIT, 300 * 10**8, 2_700_000,
        )

    @pytest.mark.parametrize(("amount", "name"), [(98 * UNIT + 1, "InsufficientBalance"), (0, "InvalidAmount")])
    def test_rejects_bad_amounts(self, funded: Chain, amount: int, name: str) -> None:
        error = funded.expect_revert(TREASURER, "OpenPayGateway", "settle", funded.merchants[0],
                                     funded.deployment.token, amount, bytes(32), 1, 1)
        assert error.name == name

    def test_rejects_non_treasurer_and_paused(self, funded: Chain) -> None:
        args = (funded.merchants[0], funded.deployment.token, UNIT, bytes(32), 1, 1)
        for caller in (OPERATOR, STRANGER):
            error = funded.expect_revert(caller, "OpenPayGateway", "settle", *args)
            assert error.name == "AccessControlUnauthorizedAccount"
        funded.transact(OPERATOR, "OpenPayGateway", "pause")
        assert funded.expect_revert(TREASURER, "OpenPayGateway", "settle", *args).name == "EnforcedPause"


class TestTreasuryWithdrawal:
    def test_sends_treasury_funds(self, funded: Chain) -> None:
        receipt = funded.transact(TREASURER, "OpenPayGateway", "withdrawTreasury", funded.deployment.token,
                                  STRANGER, 2 * UNIT)
        assert funded.treasury() == 0
        assert funded.token_balance(STRANGER) == 2 * UNIT
        assert isinstance(funded.events(receipt)[-1], TreasuryWithdrawal)

    @pytest.mark.parametrize(("amount", "to", "name"), [
        (2 * UNIT + 1, STRANGER, "InsufficientBalance"),
        (0, STRANGER, "InvalidAmount"),
        (UNIT, ZERO, "ZeroAddress"),
    ])
    def test_rejects(self, funded: Chain, amount: int, to: str, name: str) -> None:
        error = funded.expect_revert(TREASURER, "OpenPayGateway", "withdrawTreasury", funded.deployment.token,
                                     to, amount)
        assert error.name == name

    def test_rejects_non_treasurer_and_paused(self, funded: Chain) -> None:
        args = (funded.deployment.token, STRANGER, UNIT)
        for caller in (OPERATOR, STRANGER, ADMIN):
            error = funded.expect_revert(caller, "OpenPayGateway", "withdrawTreasury", *args)
            assert error.name == "AccessControlUnauthorizedAccount"
        funded.transact(OPERATOR, "OpenPayGateway", "pause")
        assert funded.expect_revert(TREASURER, "OpenPayGateway", "withdrawTreasury", *args).name == "EnforcedPause"


class TestAdministration:
    def test_token_allowlist_is_admin_only(self, funded: Chain) -> None:
        for caller in (OPERATOR, STRANGER):
            error = funded.expect_revert(caller, "OpenPayGateway", "setTokenAllowed", STRANGER, True)
            assert error.name == "AccessControlUnauthorizedAccount"
        assert funded.expect_revert(ADMIN, "OpenPayGateway", "setTokenAllowed", ZERO, True).name == "ZeroAddress"

    def test_pause_is_pauser_only(self, funded: Chain) -> None:
        for caller in (TREASURER, STRANGER):
            assert funded.expect_revert(caller, "OpenPayGateway", "pause").name == "AccessControlUnauthorizedAccount"
        funded.transact(OPERATOR, "OpenPayGateway", "pause")
        assert funded.expect_revert(STRANGER, "OpenPayGateway", "unpause").name == "AccessControlUnauthorizedAccount"

    def test_credit_is_collector_only(self, funded: Chain) -> None:
        for caller in (OPERATOR, STRANGER, ADMIN):
            error = funded.expect_revert(caller, "OpenPayGateway", "creditCollected", funded.merchants[0],
                                         funded.deployment.token, UNIT, 0)
            assert error.name == "AccessControlUnauthorizedAccount"

    def test_roles_are_granted_as_deployed(self, funded: Chain) -> None:
        d = funded.deployment
        for contract, role, holder in (
            ("OpenPayGateway", "OPERATOR_ROLE", d.operator),
            ("OpenPayGateway", "PAUSER_ROLE", d.operator),
            ("OpenPayGateway", "TREASURER_ROLE", d.treasurer),
            ("OpenPayGateway", "COLLECTOR_ROLE", d.subscriptions),
            ("OpenPayGateway", "ADMIN_ROLE", d.admin),
            ("OpenPaySubscriptions", "OPERATOR_ROLE", d.operator),
            ("OpenPayRateOracle", "REPORTER_ROLE", d.reporter),
        ):
            role_id = funded.call(contract, role)
            assert funded.call(contract, "hasRole", role_id, holder) is True, (contract, role)
        assert funded.call("OpenPayGateway", "isTokenAllowed", d.token) is True
