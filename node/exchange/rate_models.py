"""Exchange-rate tables (schema ``exchange``): every observation kept as history, admin
overrides with their reason, and the rounds posted to the on-chain oracle."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, Identity, Index, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base

SCHEMA = "exchange"
Rate = Numeric(38, 18)


class ExchangeRate(Base):
    """One observed rate: ``rate`` units of ``quote`` per one ``base`` (LKR per USDT)."""

    __tablename__ = "rates"
    __table_args__ = (
        Index("ix_rates_pair_fetched", "base", "quote", "fetched_at"),
        {"schema": SCHEMA},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    base: Mapped[str] = mapped_column(String(10))
    quote: Mapped[str] = mapped_column(String(10))
    rate: Mapped[Decimal] = mapped_column(Rate)
    source: Mapped[str] = mapped_column(String(20))  # COINGECKO | SEED | MANUAL
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RateOverride(Base):
    """An admin's manual rate; it wins over fetched rates until it expires or is cleared."""

    __tablename__ = "rate_overrides"
    __table_args__ = (Index("ix_rate_overrides_pair", "base", "quote", "created_at"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    base: Mapped[str] = mapped_column(String(10))
    quote: Mapped[str] = mapped_column(String(10))
    rate: Mapped[Decimal] = mapped_column(Rate)
    reason: Mapped[str] = mapped_column(Text)
    admin_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OraclePost(Base):
    __tablename__ = "oracle_posts"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    rate: Mapped[Decimal] = mapped_column(Rate)
    tx_hash: Mapped[str] = mapped_column(String(66))
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
