"""All of settlement's SQL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from node.db.base import TokenAmount
from node.settlement.models import MerchantBalance, TreasuryBalance


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
