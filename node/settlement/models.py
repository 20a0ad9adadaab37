from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base
from node.db.base import TokenAmount


class MerchantBalance(Base):
    """A merchant's money in the gateway per token, from final events only."""

    __tablename__ = "merchant_balances"
    __table_args__ = {"schema": "settlement"}

    chain_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)  # on-chain bytes32 id
    token: Mapped[str] = mapped_column(String(42), primary_key=True)
    available: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    credited_total: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    fees_total: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    withdrawn_total: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    refunded_total: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    settled_total: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TreasuryBalance(Base):
    __tablename__ = "treasury_balances"
    __table_args__ = {"schema": "settlement"}

    chain_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(42), primary_key=True)
    available: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    fees_total: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    settled_total: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    withdrawn_total: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- money after payment: ledger, withdrawals, payout addresses, LKR settlement, chain sends ---------


class LedgerEntry(Base):
    """One movement of a merchant's (or the treasury's) money, from a final gateway event."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_merchant", "chain_id", "merchant_key", "block_number", "log_index"),
        {"schema": "settlement"},
    )

    chain_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    block_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    merchant_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))  # None: treasury only
    token: Mapped[str] = mapped_column(String(42))
    # PAYMENT, DEPOSIT, SUBSCRIPTION_CHARGE, REFUND, WITHDRAWAL, SETTLEMENT, TREASURY_WITHDRAWAL
    kind: Mapped[str] = mapped_column(String(24))
    amount: Mapped[Decimal] = mapped_column(TokenAmount)  # signed change of the merchant's available
    fee: Mapped[Decimal] = mapped_column(TokenAmount, default=0)  # to the treasury
    rate: Mapped[int | None] = mapped_column(BigInteger)  # LKR per USDT x 1e8 carried by the event
    fiat_cents: Mapped[int | None] = mapped_column(BigInteger)  # LKR of `amount` at that rate
    fee_fiat_cents: Mapped[int | None] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(String(66))  # payment id / settlement ref (hex)
    counterparty: Mapped[str | None] = mapped_column(String(42))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Withdrawal(Base):
    """REQUESTED -> APPROVED (auto below the threshold) -> SUBMITTED -> COMPLETED, or REJECTED / FAILED."""

    __tablename__ = "withdrawals"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        Index("ix_withdrawals_status", "status", "created_at"),
        CheckConstraint("amount > 0", name="amount_positive"),
        {"schema": "settlement"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    chain_id: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(42))
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    to_address: Mapped[str] = mapped_column(String(42))
    status: Mapped[str] = mapped_column(String(12))
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    requested_by: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)  # rejection or failure reason
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PayoutAddress(Base):
    """A merchant's payout address: PENDING (cool-down) -> SUBMITTED (setPayoutAddress sent) -> ACTIVE
    (PayoutAddressSet final); a newer request SUPERSEDES a pending one."""

    __tablename__ = "payout_addresses"
    __table_args__ = (Index("ix_payout_addresses_merchant", "merchant_id", "created_at"), {"schema": "settlement"})

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    chain_id: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(42))
    status: Mapped[str] = mapped_column(String(12))
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    requested_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BankAccount(Base):
    """Where LKR settlements are paid; used only once an admin VERIFIED it."""

    __tablename__ = "bank_accounts"
    __table_args__ = {"schema": "settlement"}

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    bank_name: Mapped[str] = mapped_column(String(200))
    branch: Mapped[str | None] = mapped_column(String(200))
    account_name: Mapped[str] = mapped_column(String(200))
    account_number: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="PENDING")  # PENDING, VERIFIED, REJECTED
    verified_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SettlementSchedule(Base):
    __tablename__ = "schedules"
    __table_args__ = {"schema": "settlement"}

    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    frequency: Mapped[str] = mapped_column(String(12))  # DAILY, WEEKLY, EVERY_N_DAYS, ON_REQUEST
    interval_days: Mapped[int | None] = mapped_column(Integer)
    bank_account_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SettlementBatch(Base):
    """REQUESTED -> SUBMITTED (`settle` sent) -> SETTLED_ON_CHAIN (indexed) -> PAID (bank payout recorded),
    or FAILED. The on-chain reference is the batch id as bytes32."""

    __tablename__ = "batches"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        CheckConstraint("amount > 0", name="amount_positive"),
        {"schema": "settlement"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    chain_id: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(42))
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    bank_account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    rate_fixed: Mapped[int | None] = mapped_column(BigInteger)  # oracle answer (LKR per USDT x 1e8)
    fiat_cents: Mapped[int | None] = mapped_column(BigInteger)
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    bank_reference: Mapped[str | None] = mapped_column(String(100))
    paid_on: Mapped[date | None] = mapped_column(Date)
    paid_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChainSend(Base):
    """One on-chain transaction the node owes, written BEFORE anything is broadcast: unique per
    (purpose, object), it holds every signed version (same nonce) so a restart reconciles instead
    of sending twice. SENDING -> MINED | REVERTED | DROPPED."""

    __tablename__ = "chain_sends"
    __table_args__ = (UniqueConstraint("purpose", "object_id"), {"schema": "settlement"})

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    purpose: Mapped[str] = mapped_column(String(24))  # withdrawal, settlement, payout_address, treasury
    object_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    chain_id: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(42))
    to_address: Mapped[str] = mapped_column(String(42))
    data: Mapped[str] = mapped_column(Text)
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    tx_hashes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    raw_txs: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    status: Mapped[str] = mapped_column(String(10), default="SENDING")
    mined_tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
