"""Payments tables (schema ``payments``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base
from node.db.base import TokenAmount

SCHEMA = "payments"

# internal states; the wire protocol's statuses are mapped in schemas.wire_status
STATES = ("initiated", "pending", "paid", "underpaid", "overpaid", "expired", "late", "failed", "refunded",
          "partially_refunded")
REFUND_STATES = ("REQUESTED", "PENDING_APPROVAL", "APPROVED", "SUBMITTED", "COMPLETED", "FAILED", "REJECTED")

# on-chain payment id sequence numbers: dense numbers let the gateway mark 256 paid ids per word
intent_sequence = Sequence("intent_seq", schema=SCHEMA, start=1)


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(f"status IN {STATES}", name="status"),
        Index("ix_payments_merchant_created", "merchant_id", "created_at"),
        Index("ix_payments_open_expiry", "expire_at",
              postgresql_where=text("status IN ('initiated','pending','underpaid')")),
        # the customer risk rules' counts; a payment without an e-mail has no entry (no insert to pay for)
        Index("ix_payments_customer", "merchant_id", "customer_email", "created_at",
              postgresql_where=text("customer_email IS NOT NULL")),
        # what the sweeper looks at: final deposits not yet swept (money paid with ``pay`` is never here)
        Index("ix_payments_unswept", "chain_id", postgresql_where=text("deposited_final > swept")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    branch_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    mode: Mapped[str] = mapped_column(String(4))  # live | test
    payment_no: Mapped[str] = mapped_column(String(30), unique=True)
    merchant_trade_no: Mapped[str | None] = mapped_column(String(200))
    # what the merchant asked for, in its currency
    amount: Mapped[Decimal] = mapped_column(Numeric(38, 18))
    currency: Mapped[str] = mapped_column(String(10))
    # what the customer pays (USDT base units) and its LKR value at the locked rate
    amount_units: Mapped[int] = mapped_column(TokenAmount)
    fiat_cents: Mapped[int] = mapped_column(BigInteger)
    rate: Mapped[Decimal] = mapped_column(Numeric(38, 18))  # LKR per USDT, locked
    rate_source: Mapped[str] = mapped_column(String(20))
    exchange_rate: Mapped[Decimal | None] = mapped_column(Numeric(38, 18))  # shown when currency != USDT
    exchange_fee_pct: Mapped[Decimal] = mapped_column(Numeric(10, 4))
    platform_fee_pct: Mapped[Decimal] = mapped_column(Numeric(10, 4))
    exchange_fee_units: Mapped[int] = mapped_column(TokenAmount)
    platform_fee_units: Mapped[int] = mapped_column(TokenAmount)
    provider: Mapped[str] = mapped_column(String(10))
    provider_pay_id: Mapped[str] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="initiated")
    customer_email: Mapped[str | None] = mapped_column(String(320))
    customer_billing: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    goods: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    description: Mapped[str | None] = mapped_column(Text)
    success_url: Mapped[str | None] = mapped_column(Text)
    cancel_url: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str | None] = mapped_column(Text)  # stored, never used (as the original)
    link_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    source: Mapped[str] = mapped_column(String(20), default="API")  # API | SDK | CHECKOUT | LINK
    risk_score: Mapped[int] = mapped_column(Integer, default=0)
    risk_flags: Mapped[list[str]] = mapped_column(JSONB, default=list)
    expire_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the signed intent (what the sweeper and the wallet button need)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    sequence: Mapped[int] = mapped_column(BigInteger)
    onchain_id: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    merchant_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    token: Mapped[str] = mapped_column(String(42))
    deadline: Mapped[int] = mapped_column(BigInteger)
    rate_fixed: Mapped[int] = mapped_column(TokenAmount)
    signature: Mapped[bytes] = mapped_column(LargeBinary(65))
    deposit_address: Mapped[str] = mapped_column(String(42), unique=True)  # lowercase
    # what the chain says (sums of payments.receipts; kept here for cheap reads)
    received_seen: Mapped[int] = mapped_column(TokenAmount, default=0)
    received_final: Mapped[int] = mapped_column(TokenAmount, default=0)
    # the final part of ``received_final`` that came as plain transfers to the deposit address (kind
    # TRANSFER): what a sweep can collect. ``pay`` credits the gateway directly, nothing waits for it.
    # A server default: the API's hot-path insert names its columns and does not list this one.
    deposited_final: Mapped[int] = mapped_column(TokenAmount, default=0, server_default=text("0"))
    swept: Mapped[int] = mapped_column(TokenAmount, default=0)
    refunded_units: Mapped[int] = mapped_column(TokenAmount, default=0)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    payer: Mapped[str | None] = mapped_column(String(42))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    sweep_tx: Mapped[str | None] = mapped_column(String(66))
    sweep_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    late_decision: Mapped[str | None] = mapped_column(String(10))  # ACCEPTED | REFUND
    late_from: Mapped[str | None] = mapped_column(String(10))  # while late: expired | failed (what it was)

    @property
    def fee_units(self) -> int:
        return self.exchange_fee_units + self.platform_fee_units


class Receipt(Base):
    """A token movement to a payment as the chain showed it (a ``pay`` or a transfer to the
    deposit address); ``final`` once its block is final. Reorged rows are deleted."""

    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("chain_id", "block_hash", "log_index"),
        Index("ix_receipts_payment", "payment_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    payment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str] = mapped_column(String(10))  # PAY | TRANSFER
    payer: Mapped[str] = mapped_column(String(42))
    amount: Mapped[int] = mapped_column(TokenAmount)
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    after_expiry: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdempotencyRecord(Base):
    """``Idempotency-Key`` of a creating POST: the same key and body answer the stored response."""

    __tablename__ = "idempotency_keys"
    __table_args__ = {"schema": SCHEMA}

    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    scope: Mapped[str] = mapped_column(String(60), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    body_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# a refund in these states holds its amount of the merchant's balance (withdrawals and refunds both see it)
REFUNDS_IN_FLIGHT = ("REQUESTED", "PENDING_APPROVAL", "APPROVED", "SUBMITTED")


class Refund(Base):
    """REQUESTED -> APPROVED | PENDING_APPROVAL (an administrator approves or REJECTs) -> SUBMITTED
    (sent through ``settlement.chain_sends``) -> COMPLETED (the ``Refunded`` event is final) or FAILED
    (reverted or dropped on chain)."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint(f"status IN {REFUND_STATES}", name="status"),
        Index("ix_refunds_payment", "payment_id"),
        Index("ix_refunds_status", "status", "created_at",
              postgresql_where=text("status IN ('PENDING_APPROVAL', 'APPROVED')")),
        UniqueConstraint("merchant_id", "idempotency_key"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    payment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    amount_units: Mapped[int] = mapped_column(TokenAmount)
    to_address: Mapped[str] = mapped_column(String(42))
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="REQUESTED")
    # the on-chain refund's reference: the payment's on-chain id (the gateway keys refunds by it)
    onchain_ref: Mapped[bytes] = mapped_column(LargeBinary(32))
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    requested_by: Mapped[str | None] = mapped_column(String(80))
    review_reason: Mapped[str | None] = mapped_column(Text)  # why it waits for an administrator
    decided_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PaymentLink(Base):
    __tablename__ = "links"
    __table_args__ = (
        CheckConstraint("status IN ('ACTIVE','INACTIVE')", name="status"),
        Index("ix_links_merchant", "merchant_id", "created_at"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    branch_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    mode: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(10))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(38, 18))
    allow_custom_amount: Mapped[bool] = mapped_column(Boolean, default=False)
    min_amount: Mapped[Decimal | None] = mapped_column(Numeric(38, 18))
    max_amount: Mapped[Decimal | None] = mapped_column(Numeric(38, 18))
    allow_quantity: Mapped[bool] = mapped_column(Boolean, default=False)
    max_quantity: Mapped[int] = mapped_column(Integer, default=1)
    reusable: Mapped[bool] = mapped_column(Boolean, default=True)
    show_qr: Mapped[bool] = mapped_column(Boolean, default=True)
    success_url: Mapped[str | None] = mapped_column(Text)
    cancel_url: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    merchant_trade_no: Mapped[str | None] = mapped_column(String(200))
    order_expire_minutes: Mapped[int | None] = mapped_column(Integer)
    expire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(10), default="ACTIVE")
    usage_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
