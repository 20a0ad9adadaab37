"""Settlement's rules: balances, withdrawals, payout addresses, bank accounts, LKR settlement batches.

Balances are the projection of final chain events (handlers.py); what this module adds is the
reservation: money promised to an in-flight withdrawal or settlement batch. A request is accepted
only if ``amount <= available - reserved`` while holding the merchant's advisory lock, so
concurrent requests can never promise the same money twice.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chain.events import Collected, DepositSwept, PaymentReceived, decode_log
from node.admin import audit
from node.admin.platform import get_settings
from node.auth.context import RequestMeta
from node.bus import announce
from node.config import Settings
from node.db.paging import page
from node.merchants import service as merchants
from node.money import InvalidAmount as MoneyInvalid
from node.money import format_units, parse_decimal, to_base_units
from node.settlement import repository as repo
from node.settlement.chainctx import GatewayContext, merchant_of_key
from node.settlement.errors import (
    BankAccountNotFound,
    BankAccountNotVerified,
    BelowMinimum,
    IdempotencyKeyReused,
    InsufficientBalance,
    InvalidAddress,
    InvalidAmount,
    InvalidTransition,
    MerchantNotAllowed,
    PayoutAddressNotSet,
    SettlementNotFound,
    TwoFactorRequired,
    WithdrawalNotFound,
)
from node.settlement.models import (
    BankAccount,
    LedgerEntry,
    PayoutAddress,
    SettlementBatch,
    SettlementSchedule,
    Withdrawal,
)

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
FIXED_TO_CENTS = 10**24  # token base units (1e18) x rate fixed point (1e8) / 100 cents


def parse_amount(text: str | None) -> int:
    """A positive USDT amount given as a decimal string, in base units."""
    if not isinstance(text, str):
        raise InvalidAmount("amount must be a decimal string, e.g. \"25.5\"")
    try:
        value = parse_decimal(text)
    except MoneyInvalid:
        raise InvalidAmount("amount must be a decimal string, e.g. \"25.5\"") from None
    units = to_base_units(value)
    if units <= 0 or value != Decimal(units).scaleb(-18):
        raise InvalidAmount("amount must be positive with at most 18 decimals")
    if units >= 2**255:
        raise InvalidAmount("amount is too large")
    return units


def fiat_cents(amount: int, rate_fixed: int) -> int:
    """LKR cents of a token amount at an 8-decimal LKR/USDT rate (rounded down)."""
    return amount * rate_fixed // FIXED_TO_CENTS


def _usdt_setting(value: Any, default: str) -> int:
    try:
        return to_base_units(parse_decimal(str(value)))
    except MoneyInvalid:
        return to_base_units(Decimal(default))


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value else None


# --- balances and ledger -----------------------------------------------------------------------------


async def spendable(session: AsyncSession, ctx: GatewayContext, merchant_id: uuid.UUID) -> int:
    """available - reserved, for rules elsewhere (e.g. refunds bound by the balance)."""
    key = ctx.merchant_key(merchant_id)
    return await repo.available(session, ctx.chain_id, key, ctx.token) - await repo.reserved(
        session, ctx.chain_id, merchant_id, ctx.token)


@dataclass(frozen=True)
class Incoming:
    """Money on its way to the merchant's available balance, net of the fee it will pay, in token
    base units and LKR cents (at each payment's locked rate). ``unswept``: at deposit addresses,
    not yet moved into the gateway by a final sweep; ``unconfirmed``: credited by gateway events
    (pay, sweep, subscription charge) that are not final yet. Disjoint: a sweep seen but not final
    moves money from the first to the second, and a final one out of both into available."""

    unswept: int = 0
    unswept_cents: int = 0
    unconfirmed: int = 0
    unconfirmed_cents: int = 0

    @property
    def total(self) -> int:
        return self.unswept + self.unconfirmed

    @property
    def total_cents(self) -> int:
        return self.unswept_cents + self.unconfirmed_cents


async def incoming(session: AsyncSession, ctx: GatewayContext, merchant_id: uuid.UUID) -> Incoming:
    """Seen on chain, not yet available: all from indexed rows (receipts, payments, unfinal logs)."""
    key = ctx.merchant_key(merchant_id)
    unconfirmed = unconfirmed_cents = 0
    sweeping: dict[bytes, int] = {}  # payment id -> received by sweeps seen but not final
    for row in await repo.pending_credit_logs(session, ctx.chain_id):
        event = decode_log({"address": row.address, "topics": row.topics, "data": row.data,
                            "blockNumber": hex(row.block_number), "blockHash": row.block_hash,
                            "transactionHash": row.transaction_hash, "logIndex": hex(row.log_index)})
        if event is None or event.address != ctx.gateway:
            continue
        if isinstance(event, DepositSwept):
            sweeping[event.payment_id] = sweeping.get(event.payment_id, 0) + event.received
        if getattr(event, "merchant_id", None) != key or getattr(event, "token", None) != ctx.token:
            continue
        if isinstance(event, PaymentReceived):
            unconfirmed += event.amount - event.fee
            unconfirmed_cents += fiat_cents(event.amount - event.fee, event.rate)
        elif isinstance(event, DepositSwept):
            unconfirmed += event.received - event.fee_charged
            unconfirmed_cents += fiat_cents(event.received - event.fee_charged, event.rate)
        elif isinstance(event, Collected):
            unconfirmed += event.amount - event.fee  # a subscription charge carries no rate: no LKR
    unswept = unswept_cents = 0
    for deposit in await repo.unswept_deposits(session, ctx.chain_id, merchant_id, ctx.token):
        waiting = deposit.transferred - deposit.swept - sweeping.get(deposit.onchain_id, 0)
        if waiting <= 0:
            continue
        # what the sweep will credit: the contract charges received * fee // amount
        net = waiting - waiting * deposit.fee // deposit.amount
        unswept += net
        unswept_cents += fiat_cents(net, deposit.rate_fixed)
    return Incoming(unswept, unswept_cents, unconfirmed, unconfirmed_cents)


def _lkr(cents: int) -> str:
    return str(Decimal(cents).scaleb(-2))


async def balance(session: AsyncSession, ctx: GatewayContext, merchant_id: uuid.UUID) -> dict[str, Any]:
    key = ctx.merchant_key(merchant_id)
    available = await repo.available(session, ctx.chain_id, key, ctx.token)
    reserved = await repo.reserved(session, ctx.chain_id, merchant_id, ctx.token)
    kinds = await repo.lifetime_by_kind(session, ctx.chain_id, key, ctx.token)
    coming = await incoming(session, ctx, merchant_id)

    def total(*names: str, index: int = 0, sign: int = 1) -> int:
        return sum(sign * kinds.get(n, (0, 0, 0, 0))[index] for n in names)

    credits = ("PAYMENT", "DEPOSIT", "SUBSCRIPTION_CHARGE")
    return {
        "currency": "USDT", "token": ctx.token, "chainId": ctx.chain_id,
        "available": format_units(available), "reserved": format_units(reserved),
        "withdrawable": format_units(max(available - reserved, 0)),
        "incoming": format_units(coming.total), "incomingLkr": _lkr(coming.total_cents),
        "incomingDetail": {
            "unswept": {"amount": format_units(coming.unswept), "lkr": _lkr(coming.unswept_cents)},
            "unconfirmed": {"amount": format_units(coming.unconfirmed), "lkr": _lkr(coming.unconfirmed_cents)},
        },
        "lifetime": {
            "paid": format_units(total(*credits)), "fees": format_units(total(*credits, index=1)),
            "refunded": format_units(total("REFUND", sign=-1)), "withdrawn": format_units(total("WITHDRAWAL", sign=-1)),
            "settled": format_units(total("SETTLEMENT", sign=-1)),
        },
        # at each event's own rate (payments and deposits carry theirs; settlements their LKR amount)
        "lifetimeLkr": {
            "paid": str(Decimal(total(*credits, index=2)).scaleb(-2)),
            "fees": str(Decimal(total(*credits, index=3)).scaleb(-2)),
            "settled": str(Decimal(total("SETTLEMENT", index=2, sign=-1)).scaleb(-2)),
            # priced when indexed (repository.price_outflows): refunds at the refunded payment's
            # locked rate, withdrawals at the oracle answer in effect at their block
            "refunded": _lkr(total("REFUND", index=2, sign=-1)),
            "withdrawn": _lkr(total("WITHDRAWAL", index=2, sign=-1)),
        },
    }


def ledger_data(entry: LedgerEntry) -> dict[str, Any]:
    amount = int(entry.amount)
    return {
        "kind": entry.kind, "amount": ("-" if amount < 0 else "") + format_units(abs(amount)),
        "fee": format_units(int(entry.fee)), "token": entry.token,
        "rate": str(Decimal(entry.rate).scaleb(-8)) if entry.rate is not None else None,
        "amountLkr": str(Decimal(entry.fiat_cents).scaleb(-2)) if entry.fiat_cents is not None else None,
        "reference": entry.reference, "counterparty": entry.counterparty,
        "txHash": entry.tx_hash, "blockNumber": entry.block_number, "logIndex": entry.log_index,
        "recordedAt": _iso(entry.recorded_at),
    }


# --- withdrawals --------------------------------------------------------------------------------------


def withdrawal_data(w: Withdrawal) -> dict[str, Any]:
    return {
        "id": str(w.id), "merchantId": str(w.merchant_id), "amount": format_units(int(w.amount)),
        "currency": "USDT", "token": w.token, "toAddress": w.to_address, "status": w.status,
        "needsApproval": w.needs_approval, "txHash": w.tx_hash, "blockNumber": w.block_number,
        "reason": w.reason, "createdAt": _iso(w.created_at), "submittedAt": _iso(w.submitted_at),
        "completedAt": _iso(w.completed_at),
    }


async def _announce_withdrawal(session: AsyncSession, w: Withdrawal, event: str) -> None:
    await session.flush()
    await session.refresh(w)
    await announce(session, f"withdrawal.{event}", withdrawal_data(w), key=str(w.id))


async def _check_merchant(session: AsyncSession, merchant_id: uuid.UUID) -> Any:
    merchant = await merchants.get(session, merchant_id)
    if merchant.status != "ACTIVE":
        raise MerchantNotAllowed(f"the merchant is {merchant.status.lower()}: money cannot leave the account")
    if merchant.kyc_status != "APPROVED":
        raise MerchantNotAllowed("withdrawals and settlements need an approved KYC")
    return merchant


async def request_withdrawal(
    session: AsyncSession, ctx: GatewayContext, merchant_id: uuid.UUID, amount: int, *,
    idempotency_key: str | None, actor_type: str, actor_id: uuid.UUID | None, meta: RequestMeta | None = None,
) -> tuple[Withdrawal, bool]:
    """Returns (withdrawal, created). The same Idempotency-Key returns the first one."""
    await repo.lock_merchant(session, merchant_id)
    if idempotency_key:
        existing = (await session.execute(select(Withdrawal).where(
            Withdrawal.merchant_id == merchant_id, Withdrawal.idempotency_key == idempotency_key))).scalar_one_or_none()
        if existing is not None:
            if int(existing.amount) != amount:
                raise IdempotencyKeyReused("this Idempotency-Key was used for a different withdrawal")
            return existing, False
    await _check_merchant(session, merchant_id)
    limits = (await get_settings(session))["limits"]
    minimum = _usdt_setting(limits.get("minWithdrawalUsdt", "10"), "10")
    if amount < minimum:
        raise BelowMinimum(f"the minimum withdrawal is {format_units(minimum)} USDT")
    payout = await repo.active_payout(session, merchant_id, ctx.chain_id)
    if payout is None:
        raise PayoutAddressNotSet("register a payout address and wait for it to become active")
    free = await spendable(session, ctx, merchant_id)
    if amount > free:
        raise InsufficientBalance(f"only {format_units(max(free, 0))} USDT can be withdrawn now")
    threshold = _usdt_setting(limits.get("withdrawalApprovalThresholdUsdt", "1000"), "1000")
    needs_approval = amount > threshold
    withdrawal = Withdrawal(
        id=uuid.uuid4(), merchant_id=merchant_id, chain_id=ctx.chain_id, token=ctx.token, amount=amount,
        to_address=payout.address, status="REQUESTED" if needs_approval else "APPROVED",
        needs_approval=needs_approval, idempotency_key=idempotency_key,
        requested_by=str(actor_id) if actor_id else None,
    )
    session.add(withdrawal)
    await audit.record(session, action="withdrawal.requested", actor_type=actor_type,  # type: ignore[arg-type]
                       actor_id=actor_id, merchant_id=merchant_id, resource_type="withdrawal",
                       resource_id=withdrawal.id, details={"amount": format_units(amount),
                                                           "toAddress": payout.address}, meta=meta)
    await _announce_withdrawal(session, withdrawal, "requested")
    if not needs_approval:
        await _announce_withdrawal(session, withdrawal, "approved")
    return withdrawal, True


async def get_withdrawal(session: AsyncSession, withdrawal_id: uuid.UUID, *, merchant_id: uuid.UUID | None = None,
                         for_update: bool = False) -> Withdrawal:
    query = select(Withdrawal).where(Withdrawal.id == withdrawal_id)
    if merchant_id is not None:
        query = query.where(Withdrawal.merchant_id == merchant_id)
    if for_update:
        query = query.with_for_update()
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise WithdrawalNotFound("withdrawal not found")
    return found


async def list_withdrawals(session: AsyncSession, *, merchant_id: uuid.UUID | None = None, status: str | None = None,
                           offset: int = 0, limit: int = 50) -> tuple[list[Withdrawal], int]:
    query = select(Withdrawal)
    if merchant_id is not None:
        query = query.where(Withdrawal.merchant_id == merchant_id)
    if status:
        query = query.where(Withdrawal.status == status.upper())
    return await page(session, query, Withdrawal.created_at.desc(), offset=offset, limit=limit)


async def decide_withdrawal(session: AsyncSession, withdrawal_id: uuid.UUID, *, approve: bool, admin_id: uuid.UUID,
                            reason: str | None = None, meta: RequestMeta | None = None) -> Withdrawal:
    withdrawal = await get_withdrawal(session, withdrawal_id, for_update=True)
    if withdrawal.status != "REQUESTED":
        raise InvalidTransition(f"a {withdrawal.status} withdrawal cannot be {'approved' if approve else 'rejected'}")
    old = withdrawal.status
    withdrawal.status = "APPROVED" if approve else "REJECTED"
    withdrawal.decided_by = admin_id
    withdrawal.decided_at = datetime.now(UTC)
    withdrawal.reason = None if approve else (reason or "rejected by an administrator")
    withdrawal.updated_at = datetime.now(UTC)
    event = "approved" if approve else "rejected"
    await audit.record(session, action=f"withdrawal.{event}", actor_type="ADMIN", actor_id=admin_id,
                       merchant_id=withdrawal.merchant_id, resource_type="withdrawal", resource_id=withdrawal.id,
                       changes={"status": [old, withdrawal.status]}, details={"reason": reason} if reason else None,
                       meta=meta)
    await _announce_withdrawal(session, withdrawal, event)
    return withdrawal


# --- payout address -----------------------------------------------------------------------------------


def payout_data(p: PayoutAddress) -> dict[str, Any]:
    return {"id": str(p.id), "address": p.address, "status": p.status, "effectiveAt": _iso(p.effective_at),
            "activatedAt": _iso(p.activated_at), "txHash": p.tx_hash, "createdAt": _iso(p.created_at)}


async def request_payout_address(
    session: AsyncSession, settings: Settings, ctx: GatewayContext, merchant_id: uuid.UUID, user_id: uuid.UUID | None,
    address: str, *, code: str | None, recovery_code: str | None = None, meta: RequestMeta | None = None,
) -> PayoutAddress:
    """A new payout address, confirmed with the user's 2FA; it takes effect on chain after the cool-down."""
    from node.merchants import accounts
    from node.merchants import repository as merchants_repo

    if not isinstance(address, str) or not ADDRESS.match(address) or int(address, 16) == 0:
        raise InvalidAddress("address must be a 0x-prefixed 20-byte hex address (BSC)")
    if user_id is None:
        raise TwoFactorRequired("a portal user with two-factor authentication must confirm a payout address")
    user = await merchants_repo.get_user(session, user_id, for_update=True)
    if user is None or not user.totp_enabled:
        raise TwoFactorRequired("turn on two-factor authentication to set a payout address")
    await accounts.check_second_factor(session, settings, user, code=code, recovery_code=recovery_code)
    await repo.lock_merchant(session, merchant_id)
    merchant = await merchants.get(session, merchant_id)
    await session.execute(update(PayoutAddress).where(
        PayoutAddress.merchant_id == merchant_id, PayoutAddress.status == "PENDING").values(status="SUPERSEDED"))
    now = datetime.now(UTC)
    payout = PayoutAddress(id=uuid.uuid4(), merchant_id=merchant_id, chain_id=ctx.chain_id, address=address.lower(),
                           status="PENDING", effective_at=now + timedelta(seconds=settings.payout_address_cooldown_s),
                           requested_by=user_id)
    session.add(payout)
    await session.flush()
    active = await repo.active_payout(session, merchant_id, ctx.chain_id)
    await audit.record(session, action="payout_address.requested", actor_type="MERCHANT_USER", actor_id=user_id,
                       merchant_id=merchant_id, resource_type="payout_address", resource_id=payout.id,
                       changes={"address": [active.address if active else None, payout.address]},
                       details={"effectiveAt": payout.effective_at.isoformat()}, meta=meta)
    await announce(session, "email.requested", {
        "template": "payout_address.changed", "to": merchant.email, "merchantId": str(merchant_id),
        "context": {"businessName": merchant.business_name, "address": payout.address,
                    "previousAddress": active.address if active else None,
                    "effectiveAt": payout.effective_at.isoformat()},
    }, key=merchant.email)
    return payout


async def payout_addresses(session: AsyncSession, merchant_id: uuid.UUID) -> list[PayoutAddress]:
    rows = await session.execute(select(PayoutAddress).where(PayoutAddress.merchant_id == merchant_id)
                                 .order_by(PayoutAddress.created_at.desc()).limit(20))
    return list(rows.scalars())


# --- bank accounts and schedules ------------------------------------------------------------------------


def bank_account_data(b: BankAccount) -> dict[str, Any]:
    return {"id": str(b.id), "merchantId": str(b.merchant_id), "bankName": b.bank_name, "branch": b.branch,
            "accountName": b.account_name, "accountNumber": b.account_number, "status": b.status,
            "verifiedAt": _iso(b.verified_at), "createdAt": _iso(b.created_at)}


async def add_bank_account(session: AsyncSession, merchant_id: uuid.UUID, *, bank_name: str, branch: str | None,
                           account_name: str, account_number: str, actor_id: uuid.UUID | None,
                           meta: RequestMeta | None = None) -> BankAccount:
    account = BankAccount(id=uuid.uuid4(), merchant_id=merchant_id, bank_name=bank_name, branch=branch,
                          account_name=account_name, account_number=account_number, status="PENDING")
    session.add(account)
    await session.flush()
    await audit.record(session, action="bank_account.added", actor_type="MERCHANT_USER", actor_id=actor_id,
                       merchant_id=merchant_id, resource_type="bank_account", resource_id=account.id, meta=meta)
    return account


async def get_bank_account(session: AsyncSession, account_id: uuid.UUID, *, merchant_id: uuid.UUID | None = None
                           ) -> BankAccount:
    query = select(BankAccount).where(BankAccount.id == account_id)
    if merchant_id is not None:
        query = query.where(BankAccount.merchant_id == merchant_id)
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise BankAccountNotFound("bank account not found")
    return found


async def list_bank_accounts(session: AsyncSession, merchant_id: uuid.UUID | None = None,
                             status: str | None = None) -> list[BankAccount]:
    query = select(BankAccount).order_by(BankAccount.created_at.desc()).limit(200)
    if merchant_id is not None:
        query = query.where(BankAccount.merchant_id == merchant_id)
    if status:
        query = query.where(BankAccount.status == status.upper())
    return list((await session.execute(query)).scalars())


async def verify_bank_account(session: AsyncSession, account_id: uuid.UUID, *, verified: bool, admin_id: uuid.UUID,
                              meta: RequestMeta | None = None) -> BankAccount:
    account = await get_bank_account(session, account_id)
    old = account.status
    account.status = "VERIFIED" if verified else "REJECTED"
    account.verified_by = admin_id
    account.verified_at = datetime.now(UTC)
    await audit.record(session, action=f"bank_account.{account.status.lower()}", actor_type="ADMIN",
                       actor_id=admin_id, merchant_id=account.merchant_id, resource_type="bank_account",
                       resource_id=account.id, changes={"status": [old, account.status]}, meta=meta)
    return account


FREQUENCIES = {"DAILY": 1, "WEEKLY": 7, "EVERY_N_DAYS": None, "ON_REQUEST": None}


async def get_schedule(session: AsyncSession, merchant_id: uuid.UUID) -> dict[str, Any]:
    row = await session.get(SettlementSchedule, merchant_id)
    if row is None:
        days = int((await get_settings(session))["settlement"].get("settlementDays", 3))
        return {"frequency": "EVERY_N_DAYS", "intervalDays": days, "bankAccountId": None, "nextRunAt": None,
                "default": True}
    return {"frequency": row.frequency, "intervalDays": row.interval_days,
            "bankAccountId": str(row.bank_account_id) if row.bank_account_id else None,
            "nextRunAt": _iso(row.next_run_at), "default": False}


async def set_schedule(session: AsyncSession, merchant_id: uuid.UUID, *, frequency: str, interval_days: int | None,
                       bank_account_id: uuid.UUID | None) -> dict[str, Any]:
    frequency = frequency.upper()
    if frequency not in FREQUENCIES:
        raise InvalidTransition("frequency must be DAILY, WEEKLY, EVERY_N_DAYS or ON_REQUEST", code="VALIDATION_ERROR")
    days = FREQUENCIES[frequency] or interval_days
    if frequency == "EVERY_N_DAYS" and (not days or not 1 <= days <= 90):
        raise InvalidAmount("intervalDays must be between 1 and 90")
    if bank_account_id is not None:
        await get_bank_account(session, bank_account_id, merchant_id=merchant_id)
    next_run = None if frequency == "ON_REQUEST" else datetime.now(UTC) + timedelta(days=days or 1)
    values = {"frequency": frequency, "interval_days": days, "bank_account_id": bank_account_id,
              "next_run_at": next_run, "updated_at": func.now()}
    await session.execute(insert(SettlementSchedule).values(merchant_id=merchant_id, **values)
                          .on_conflict_do_update(index_elements=["merchant_id"], set_=values))
    return await get_schedule(session, merchant_id)


# --- LKR settlement batches ------------------------------------------------------------------------------


def batch_data(b: SettlementBatch) -> dict[str, Any]:
    rate = str(Decimal(b.rate_fixed).scaleb(-8)) if b.rate_fixed is not None else None
    lkr = str(Decimal(b.fiat_cents).scaleb(-2)) if b.fiat_cents is not None else None
    return {
        "id": str(b.id), "merchantId": str(b.merchant_id), "reference": "0x" + (bytes(16) + b.id.bytes).hex(),
        "amount": format_units(int(b.amount)), "currency": "USDT", "token": b.token, "status": b.status,
        "rate": rate, "fiatAmount": lkr, "fiatCurrency": "LKR", "bankAccountId": str(b.bank_account_id),
        "txHash": b.tx_hash, "blockNumber": b.block_number, "bankReference": b.bank_reference,
        "paidOn": _iso(b.paid_on), "reason": b.reason, "createdAt": _iso(b.created_at),
    }


async def _announce_batch(session: AsyncSession, b: SettlementBatch, event: str) -> None:
    await session.flush()
    await session.refresh(b)
    await announce(session, f"settlement.{event}", batch_data(b), key=str(b.id))


async def request_settlement(
    session: AsyncSession, ctx: GatewayContext, merchant_id: uuid.UUID, *, amount: int | None,
    bank_account_id: uuid.UUID | None, idempotency_key: str | None, actor_type: str, actor_id: uuid.UUID | None,
    meta: RequestMeta | None = None,
) -> tuple[SettlementBatch, bool]:
    """A batch moving ``amount`` (default: everything withdrawable) to the treasury for an LKR payout."""
    await repo.lock_merchant(session, merchant_id)
    if idempotency_key:
        existing = (await session.execute(select(SettlementBatch).where(
            SettlementBatch.merchant_id == merchant_id, SettlementBatch.idempotency_key == idempotency_key))
        ).scalar_one_or_none()
        if existing is not None:
            return existing, False
    await _check_merchant(session, merchant_id)
    if bank_account_id is None:
        schedule = await session.get(SettlementSchedule, merchant_id)
        bank_account_id = schedule.bank_account_id if schedule else None
    if bank_account_id is None:
        verified = await list_bank_accounts(session, merchant_id, "VERIFIED")
        if not verified:
            raise BankAccountNotVerified("add a bank account and have it verified first")
        bank_account_id = verified[0].id
    account = await get_bank_account(session, bank_account_id, merchant_id=merchant_id)
    if account.status != "VERIFIED":
        raise BankAccountNotVerified("this bank account is not verified yet")
    free = await spendable(session, ctx, merchant_id)
    amount = free if amount is None else amount
    if amount <= 0 or amount > free:
        raise InsufficientBalance(f"only {format_units(max(free, 0))} USDT can be settled now")
    batch = SettlementBatch(id=uuid.uuid4(), merchant_id=merchant_id, chain_id=ctx.chain_id, token=ctx.token,
                            amount=amount, bank_account_id=account.id, status="REQUESTED",
                            idempotency_key=idempotency_key)
    session.add(batch)
    await audit.record(session, action="settlement.requested", actor_type=actor_type,  # type: ignore[arg-type]
                       actor_id=actor_id, merchant_id=merchant_id, resource_type="settlement", resource_id=batch.id,
                       details={"amount": format_units(amount)}, meta=meta)
    await _announce_batch(session, batch, "requested")
    return batch, True


async def get_batch(session: AsyncSession, batch_id: uuid.UUID, *, merchant_id: uuid.UUID | None = None,
                    for_update: bool = False) -> SettlementBatch:
    query = select(SettlementBatch).where(SettlementBatch.id == batch_id)
    if merchant_id is not None:
        query = query.where(SettlementBatch.merchant_id == merchant_id)
    if for_update:
        query = query.with_for_update()
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise SettlementNotFound("settlement not found")
    return found


async def list_batches(session: AsyncSession, *, merchant_id: uuid.UUID | None = None, status: str | None = None,
                       offset: int = 0, limit: int = 50) -> tuple[list[SettlementBatch], int]:
    query = select(SettlementBatch)
    if merchant_id is not None:
        query = query.where(SettlementBatch.merchant_id == merchant_id)
    if status:
        query = query.where(SettlementBatch.status == status.upper())
    return await page(session, query, SettlementBatch.created_at.desc(), offset=offset, limit=limit)


async def record_bank_payout(session: AsyncSession, batch_id: uuid.UUID, *, bank_reference: str, paid_on: date,
                             admin_id: uuid.UUID, meta: RequestMeta | None = None) -> SettlementBatch:
    batch = await get_batch(session, batch_id, for_update=True)
    if batch.status != "SETTLED_ON_CHAIN":
        raise InvalidTransition(f"a {batch.status} settlement cannot be marked paid (it must be settled on chain)")
    batch.status = "PAID"
    batch.bank_reference = bank_reference
    batch.paid_on = paid_on
    batch.paid_by = admin_id
    batch.updated_at = datetime.now(UTC)
    await audit.record(session, action="settlement.paid", actor_type="ADMIN", actor_id=admin_id,
                       merchant_id=batch.merchant_id, resource_type="settlement", resource_id=batch.id,
                       changes={"status": ["SETTLED_ON_CHAIN", "PAID"]},
                       details={"bankReference": bank_reference, "paidOn": paid_on.isoformat()}, meta=meta)
    await _announce_batch(session, batch, "completed")
    return batch


async def create_due_settlements(session: AsyncSession, ctx: GatewayContext, now: datetime | None = None) -> int:
    """Scheduled batches: one per merchant whose schedule is due and who has money to settle."""
    now = now or datetime.now(UTC)
    due = (await session.execute(select(SettlementSchedule).where(
        SettlementSchedule.next_run_at <= now, SettlementSchedule.frequency != "ON_REQUEST").with_for_update(
        skip_locked=True))).scalars().all()
    created = 0
    for schedule in due:
        schedule.next_run_at = now + timedelta(days=schedule.interval_days or 1)
        try:
            async with session.begin_nested():
                if await spendable(session, ctx, schedule.merchant_id) > 0:
                    await request_settlement(session, ctx, schedule.merchant_id, amount=None,
                                             bank_account_id=schedule.bank_account_id,
                                             idempotency_key=f"schedule:{now.date().isoformat()}",
                                             actor_type="SYSTEM", actor_id=None)
                    created += 1
        except (InsufficientBalance, BankAccountNotVerified, BankAccountNotFound, MerchantNotAllowed):
            continue
    return created


# --- refunds (the payments domain asks) -------------------------------------------------------------------


async def refund_needs_approval(session: AsyncSession, merchant_id: uuid.UUID, amount: int) -> bool:
    """Whether a refund of ``amount`` (base units) needs an admin's approval: above
    ``limits.refundApprovalThresholdUsdt`` (platform settings; default: the withdrawal threshold)."""
    limits = (await get_settings(session))["limits"]
    raw = limits.get("refundApprovalThresholdUsdt", limits.get("withdrawalApprovalThresholdUsdt", "1000"))
    return amount > _usdt_setting(raw, "1000")


__all__ = ["merchant_of_key", "refund_needs_approval", "spendable"]
