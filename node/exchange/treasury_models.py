"""The treasury's own records: withdrawals from the gateway treasury and exchange orders."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, DateTime, Integer, Numeric, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base
from node.db.base import TokenAmount


class TreasuryWithdrawalRequest(Base):
    """REQUESTED -> APPROVED (second admin above the threshold) -> SUBMITTED -> COMPLETED, or REJECTED /
    FAILED. Goes to an exchange deposit address by `withdrawTreasury` (TREASURER key)."""

    __tablename__ = "treasury_withdrawals"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"), {"schema": "exchange"})

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    chain_id: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(42))
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    to_address: Mapped[str] = mapped_column(String(42))
    exchange: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12))
    requested_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    approved_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ExchangeOrder(Base):
    """A sale of USDT on an exchange: written PENDING before the exchange is asked (our id is the
    client order id), then OPEN/FILLED/... from the exchange's answer, or FAILED with its error."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("exchange", "exchange_order_id"), {"schema": "exchange"})

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    exchange: Mapped[str] = mapped_column(String(20))
    symbol: Mapped[str] = mapped_column(String(20))
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(8))
    amount: Mapped[Decimal] = mapped_column(Numeric(36, 18))
    price: Mapped[Decimal | None] = mapped_column(Numeric(36, 18))
    status: Mapped[str] = mapped_column(String(12))
    exchange_order_id: Mapped[str | None] = mapped_column(String(100))
    filled: Mapped[Decimal | None] = mapped_column(Numeric(36, 18))
    error_code: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    details: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
