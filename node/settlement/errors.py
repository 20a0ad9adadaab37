"""Settlement's domain errors (stable codes the API renders)."""

from __future__ import annotations

from node.errors import Conflict, Forbidden, NotFound, ValidationFailed


class InsufficientBalance(Conflict):
    code = "INSUFFICIENT_BALANCE"


class BelowMinimum(ValidationFailed):
    code = "BELOW_MINIMUM_WITHDRAWAL"


class InvalidAmount(ValidationFailed):
    code = "INVALID_AMOUNT"


class InvalidAddress(ValidationFailed):
    code = "INVALID_ADDRESS"


class MerchantNotAllowed(Forbidden):
    code = "MERCHANT_NOT_ALLOWED"


class TwoFactorRequired(Forbidden):
    code = "TWO_FACTOR_REQUIRED"


class PayoutAddressNotSet(Conflict):
    code = "PAYOUT_ADDRESS_NOT_SET"


class BankAccountNotVerified(Conflict):
    code = "BANK_ACCOUNT_NOT_VERIFIED"


class InvalidTransition(Conflict):
    code = "INVALID_TRANSITION"


class IdempotencyKeyReused(Conflict):
    code = "IDEMPOTENCY_KEY_REUSED"


class WithdrawalNotFound(NotFound):
    code = "WITHDRAWAL_NOT_FOUND"


class SettlementNotFound(NotFound):
    code = "SETTLEMENT_NOT_FOUND"


class BankAccountNotFound(NotFound):
    code = "BANK_ACCOUNT_NOT_FOUND"


class SameApprover(Forbidden):
    code = "SECOND_APPROVER_REQUIRED"
