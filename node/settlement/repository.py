"""All of settlement's SQL."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import cast

from sqlalchemy import Table, Text, bindparam, func, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from node.db.base import TokenAmount
from node.db.bulk import copy_insert_ignoring_duplicates
from node.indexing.models import ChainLog
from node.settlement.models import (
    ChainSend,
    LedgerEntry,
    MerchantBalance,
    PayoutAddress,
    SettlementBatch,
    TreasuryBalance,
    Withdrawal,
)


@dataclass
class MerchantDelta:
    available: int = 0
    credited: int = 0
    fees: int = 0
    withdrawn: int = 0
    refunded: int = 0
    settled: int = 0


@dataclass
class TreasuryDelta:
    available: int = 0
    fees: int = 0
    settled: int = 0
    withdrawn: int = 0


async def apply_balance_deltas(
    session: AsyncSession, chain_id: int, merchants: Mapping[tuple[bytes, str], MerchantDelta],
    treasury: Mapping[str, TreasuryDelta],
) -> None:
    """Adds the deltas: missing rows are created at zero first, so the non-negative check
    sees only real balances (a batch may debit a balance an earlier batch credited)."""
    if merchants:
        keys = sorted(merchants)
        await session.execute(
            insert(MerchantBalance)
            .values([{"chain_id": chain_id, "merchant_key": key, "token": token} for key, token in keys])
            .on_conflict_do_nothing()
        )
        table = cast(Table, MerchantBalance.__table__)
        m = table.c
        await session.execute(
            update(table)
            .where(m.chain_id == bindparam("c"), m.merchant_key == bindparam("k"),
                   m.token == bindparam("t"))
            .values(
                available=m.available + bindparam("available", type_=TokenAmount),
                credited_total=m.credited_total + bindparam("credited", type_=TokenAmount),
                fees_total=m.fees_total + bindparam("fees", type_=TokenAmount),
                withdrawn_total=m.withdrawn_total + bindparam("withdrawn", type_=TokenAmount),
                refunded_total=m.refunded_total + bindparam("refunded", type_=TokenAmount),
                settled_total=m.settled_total + bindparam("settled", type_=TokenAmount),
                updated_at=func.now(),
            ),
            [{"c": chain_id, "k": key, "t": token, **asdict(merchants[key, token])} for key, token in keys],
        )
    if treasury:
        tokens = sorted(treasury)
        await session.execute(
            insert(TreasuryBalance).values([{"chain_id": chain_id, "token": t} for t in tokens])
            .on_conflict_do_nothing()
        )
        ttable = cast(Table, TreasuryBalance.__table__)
        t = ttable.c
        await session.execute(
            update(ttable)
            .where(t.chain_id == bindparam("c"), t.token == bindparam("t"))
            .values(
                available=t.available + bindparam("available", type_=TokenAmount),
                fees_total=t.fees_total + bindparam("fees", type_=TokenAmount),
                settled_total=t.settled_total + bindparam("settled", type_=TokenAmount),
                withdrawn_total=t.withdrawn_total + bindparam("withdrawn", type_=TokenAmount),
                updated_at=func.now(),
            ),
            [{"c": chain_id, "t": token, **asdict(treasury[token])} for token in tokens],
        )


async def merchant_balances(session: AsyncSession, chain_id: int) -> dict[tuple[bytes, str], int]:
    rows = await session.execute(
        select(MerchantBalance.merchant_key, MerchantBalance.token, MerchantBalance.available)
        .where(MerchantBalance.chain_id == chain_id)
    )
    return {(key, token): int(available) for key, token, available in rows}


async def treasury_balances(session: AsyncSession, chain_id: int) -> dict[str, int]:
    rows = await session.execute(
        select(TreasuryBalance.token, TreasuryBalance.available).where(TreasuryBalance.chain_id == chain_id)
    )
    return {token: int(available) for token, available in rows}


# --- ledger, reservations, withdrawals, payout addresses, batches -------------------------------------

IN_FLIGHT_WITHDRAWALS = ("REQUESTED", "APPROVED", "SUBMITTED")
IN_FLIGHT_BATCHES = ("REQUESTED", "SUBMITTED")


async def insert_ledger(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    await copy_insert_ignoring_duplicates(session, cast(Table, LedgerEntry.__table__), rows)


async def lock_merchant(session: AsyncSession, merchant_id: uuid.UUID) -> None:
    """Serialises money-out requests of one merchant (held to the end of the transaction); the
    balance row may not exist yet, so an advisory lock rather than a row lock."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('settlement'), hashtext(:m))"),
                          {"m": str(merchant_id)})


async def available(session: AsyncSession, chain_id: int, merchant_key: bytes, token: str) -> int:
    value = (await session.execute(
        select(MerchantBalance.available).where(MerchantBalance.chain_id == chain_id,
                                                MerchantBalance.merchant_key == merchant_key,
                                                MerchantBalance.token == token)
    )).scalar_one_or_none()
    return int(value or 0)


async def reserved(session: AsyncSession, chain_id: int, merchant_id: uuid.UUID, token: str) -> int:
    """Money promised but not yet debited on chain: withdrawals and settlement batches in flight."""
    withdrawals = select(func.coalesce(func.sum(Withdrawal.amount), 0)).where(
        Withdrawal.merchant_id == merchant_id, Withdrawal.chain_id == chain_id, Withdrawal.token == token,
        Withdrawal.status.in_(IN_FLIGHT_WITHDRAWALS)).scalar_subquery()
    batches = select(func.coalesce(func.sum(SettlementBatch.amount), 0)).where(
        SettlementBatch.merchant_id == merchant_id, SettlementBatch.chain_id == chain_id,
        SettlementBatch.token == token, SettlementBatch.status.in_(IN_FLIGHT_BATCHES)).scalar_subquery()
    return int((await session.execute(select(withdrawals + batches))).scalar_one())


async def balance_row(session: AsyncSession, chain_id: int, merchant_key: bytes, token: str) -> MerchantBalance | None:
    return (await session.execute(
        select(MerchantBalance).where(MerchantBalance.chain_id == chain_id,
                                      MerchantBalance.merchant_key == merchant_key, MerchantBalance.token == token)
    )).scalar_one_or_none()


async def lifetime_by_kind(session: AsyncSession, chain_id: int, merchant_key: bytes, token: str
                           ) -> dict[str, tuple[int, int, int, int]]:
    """kind -> (amount, fee, fiat cents, fee fiat cents) summed over the ledger."""
    rows = await session.execute(
        select(LedgerEntry.kind, func.sum(LedgerEntry.amount), func.sum(LedgerEntry.fee),
               func.coalesce(func.sum(LedgerEntry.fiat_cents), 0),
               func.coalesce(func.sum(LedgerEntry.fee_fiat_cents), 0))
        .where(LedgerEntry.chain_id == chain_id, LedgerEntry.merchant_key == merchant_key, LedgerEntry.token == token)
        .group_by(LedgerEntry.kind)
    )
    return {kind: (int(a or 0), int(f or 0), int(c or 0), int(fc or 0)) for kind, a, f, c, fc in rows}


async def ledger_page(session: AsyncSession, chain_id: int, merchant_key: bytes, *, offset: int, limit: int
                      ) -> tuple[list[LedgerEntry], int]:
    where = (LedgerEntry.chain_id == chain_id, LedgerEntry.merchant_key == merchant_key)
    total = (await session.execute(select(func.count()).select_from(LedgerEntry).where(*where))).scalar_one()
    rows = (await session.execute(
        select(LedgerEntry).where(*where)
        .order_by(LedgerEntry.block_number.desc(), LedgerEntry.log_index.desc()).offset(offset).limit(limit)
    )).scalars()
    return list(rows), int(total)


async def pending_credit_logs(session: AsyncSession, chain_id: int) -> list[ChainLog]:
    """Gateway credits seen at the tip but not final yet (a small window)."""
    rows = await session.execute(
        select(ChainLog).where(ChainLog.chain_id == chain_id, ChainLog.final.is_(False),
                               ChainLog.event.in_(("PaymentReceived", "DepositSwept", "Collected")))
    )
    return list(rows.scalars())


async def sends_by_hashes(session: AsyncSession, hashes: list[str]) -> dict[str, ChainSend]:
    """tx hash -> the send that signed it (any of its versions)."""
    if not hashes:
        return {}
    rows = await session.execute(
        select(ChainSend).where(ChainSend.tx_hashes.overlap(sql_cast(hashes, ARRAY(Text)))))
    found: dict[str, ChainSend] = {}
    for send in rows.scalars():
        for tx_hash in send.tx_hashes:
            found[tx_hash] = send
    return found


async def active_payout(session: AsyncSession, merchant_id: uuid.UUID, chain_id: int) -> PayoutAddress | None:
    return (await session.execute(
        select(PayoutAddress).where(PayoutAddress.merchant_id == merchant_id, PayoutAddress.chain_id == chain_id,
                                    PayoutAddress.status == "ACTIVE")
        .order_by(PayoutAddress.activated_at.desc()).limit(1)
    )).scalar_one_or_none()
