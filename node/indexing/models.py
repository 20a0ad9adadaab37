from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base


class ChainLog(Base):
    """A log of one of our contracts (or a token transfer to a deposit address), as the node gave it."""

    __tablename__ = "logs"
    __table_args__ = {"schema": "chain"}

    chain_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    block_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, index=True)
    transaction_hash: Mapped[str] = mapped_column(String(66))
    address: Mapped[str] = mapped_column(String(42))
    topics: Mapped[list[str]] = mapped_column(ARRAY(Text))
    data: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(64))
    final: Mapped[bool] = mapped_column(Boolean)


class ChainBlock(Base):
    """Headers of the unfinalised window: what a reorg is detected and undone against."""

    __tablename__ = "blocks"
    __table_args__ = {"schema": "chain"}

    chain_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[str] = mapped_column(String(66))
    parent_hash: Mapped[str] = mapped_column(String(66))
    timestamp: Mapped[int] = mapped_column(BigInteger)


class ChainCursor(Base):
    """The last block whose logs are committed, and the last final block."""

    __tablename__ = "cursors"
    __table_args__ = {"schema": "chain"}

    chain_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    finalized_number: Mapped[int] = mapped_column(BigInteger)
    head_number: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChainReorg(Base):
    __tablename__ = "reorgs"
    __table_args__ = {"schema": "chain"}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(Integer)
    fork_block: Mapped[int] = mapped_column(BigInteger)
    old_head: Mapped[int] = mapped_column(BigInteger)
    depth: Mapped[int] = mapped_column(Integer)
    undone: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
