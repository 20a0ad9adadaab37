"""The indexer -> payments contract: receipts from ``PaymentReceived`` and token transfers to
deposit addresses, sweeps, refunds. Runs inside the indexer's batch transaction."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from sqlalchemy import BindParameter, any_, bindparam, delete, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, TEXT, insert
from sqlalchemy.ext.asyncio import AsyncSession

from chain.events import ChainEvent, DepositSwept, PaymentReceived, Refunded, Transfer
from node.config import Settings
from node.db import Database
from node.db.base import TokenAmount
from node.indexing.handlers import ChainHandler, ChainScope
from node.payments import states
from node.payments.models import Payment, Receipt
from node.payments.refunds import refund_completed


class PaymentsProjection(ChainHandler):
    name = "payments"
    events = (PaymentReceived, Transfer, DepositSwept, Refunded)

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    async def _receipts(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent],
                        *, final: bool) -> set[uuid.UUID]:
        by_id = [e for e in events if isinstance(e, PaymentReceived) and e.address == scope.gateway]
        transfers = [e for e in events if isinstance(e, Transfer) and e.address == scope.token]
        targets: dict[bytes | str, tuple[uuid.UUID, str]] = {}
        if by_id:
            for pid, onchain_id, status in (await session.execute(
                    select(Payment.id, Payment.onchain_id, Payment.status)
                    .where(Payment.onchain_id == any_(_array({e.payment_id for e in by_id}, BYTEA))))).all():
                targets[bytes(onchain_id)] = (pid, status)
        if transfers:
            for pid, address, status in (await session.execute(
                    select(Payment.id, Payment.deposit_address, Payment.status)
                    .where(Payment.deposit_address == any_(_array({e.to_address for e in transfers}, TEXT))))).all():
                targets[address] = (pid, status)
        rows = []
        for e in events:
            if isinstance(e, PaymentReceived) and e.payment_id in targets:
                pid, status = targets[e.payment_id]
                rows.append(_row(scope, e, pid, "PAY", e.payer, e.amount, final, status))
            elif isinstance(e, Transfer) and e.to_address in targets and e.address == scope.token:
                pid, status = targets[e.to_address]
                rows.append(_row(scope, e, pid, "TRANSFER", e.from_address, e.value, final, status))
        if not rows:
            return set()
        for chunk in _chunks(rows):
            await session.execute(insert(Receipt).values(chunk).on_conflict_do_nothing())
            if final:
                # during a backfill seen and final come in one transaction: the rows seen stored
                keys = [(r["block_hash"], r["log_index"]) for r in chunk]
                await session.execute(update(Receipt).where(
                    Receipt.chain_id == scope.chain_id,
                    tuple_(Receipt.block_hash, Receipt.log_index).in_(keys)).values(final=True))
        return {r["payment_id"] for r in rows}  # type: ignore[misc]

    async def seen(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        touched = await self._receipts(session, scope, events, final=False)
        await states.recompute(session, self.settings, touched)

    async def final(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        touched = await self._receipts(session, scope, events, final=True)
        await states.recompute(session, self.settings, touched)
        for e in events:
            if e.address != scope.gateway:
                continue
            if isinstance(e, DepositSwept):
                await session.execute(update(Payment).where(Payment.onchain_id == e.payment_id)
                                      .values(swept=Payment.swept + literal(e.received, TokenAmount), sweep_tx=None,
                                              sweep_at=None))
            elif isinstance(e, Refunded):
                await refund_completed(session, self.settings, e)

    async def reverted(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        keys = [(e.block_hash, e.log_index) for e in events if isinstance(e, PaymentReceived | Transfer)]
        if not keys:
            return
        gone = (await session.execute(delete(Receipt).where(
            Receipt.chain_id == scope.chain_id, tuple_(Receipt.block_hash, Receipt.log_index).in_(keys))
            .returning(Receipt.payment_id))).scalars().all()
        await states.recompute(session, self.settings, set(gone))


def _array(values: set[bytes] | set[str], item: type[BYTEA] | type[TEXT]) -> BindParameter[object]:
    """One array parameter, however many values: a backfill batch can hold more than the
    32,767 parameters a statement may have."""
    return bindparam(None, list(values), type_=ARRAY(item))


def _chunks(rows: list[dict[str, object]], size: int = 1_000) -> list[list[dict[str, object]]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def _row(scope: ChainScope, e: ChainEvent, pid: uuid.UUID, kind: str, payer: str, amount: int, final: bool,
         status: str) -> dict[str, object]:
    return {"chain_id": scope.chain_id, "block_hash": e.block_hash, "log_index": e.log_index,
            "block_number": e.block_number, "tx_hash": e.transaction_hash, "payment_id": pid, "kind": kind,
            "payer": payer, "amount": amount, "final": final, "after_expiry": status in ("expired", "failed", "late")}


class DepositWatchCache:
    """Open deposit addresses (not yet final-and-swept), re-read at most every ``ttl`` seconds: the
    indexer asks on every fetch."""

    def __init__(self, db: Database, ttl: float = 1.0, *, horizon_days: int = 30) -> None:
        self.db = db
        self.ttl = ttl
        self.horizon_days = horizon_days
        self._at = 0.0
        self._addresses: list[str] = []

    async def __call__(self) -> Sequence[str]:
        now = time.monotonic()
        if now - self._at >= self.ttl:
            from datetime import UTC, datetime, timedelta

            since = datetime.now(UTC) - timedelta(days=self.horizon_days)
            async with self.db.unit_of_work() as session:
                # a deposit address keeps being watched after expiry: late money must not be lost
                rows = await session.execute(select(Payment.deposit_address).where(Payment.created_at > since))
                self._addresses = [r for (r,) in rows]
            self._at = now
        return self._addresses
