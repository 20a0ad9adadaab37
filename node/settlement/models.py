from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import DateTime, Integer, LargeBinary, String, func
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
