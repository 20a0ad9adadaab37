"""All of settlement's SQL."""

from __future__ import annotations

import uuid
from bisect import bisect_right
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
from node.payments.models import REFUNDS_IN_FLIGHT, Payment, Receipt, Refund
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
    await price_outflows(session, rows)
    await copy_insert_ignoring_duplicates(session, cast(Table, LedgerEntry.__table__), rows)


PRICED_HERE = ("REFUND", "WITHDRAWAL")
RATE_TO_CENTS = 10**24  # token base units (1e18) x rate fixed point (1e8) / 100 cents
MAX_BIGINT = 2**63 - 1


async def price_outflows(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    """Gives refund and withdrawal rows (their events carry no rate) a rate and an LKR amount, in
    place, before they are stored: every writer of the ledger prices them the same way.

    A refund is valued at the rate locked on the payment it refunds: it hands back part of that
    payment, so lifetime paid minus refunded in LKR is what the merchant kept at the rates it was
    paid at (a full refund cancels the payment's LKR exactly). A withdrawal, and a refund of a
    payment the node does not know, at the oracle answer in effect at the event: the latest
    ``AnswerUpdated`` at or before it, the rate ``settle`` uses, on chain and indexed, so the figure
    is recomputable from indexed events. Before any oracle answer there is no rate (None)."""
    todo = [r for r in rows if r["kind"] in PRICED_HERE and r["rate"] is None]
    if not todo:
        return
    refunded = {bytes.fromhex(str(r["reference"])[2:]) for r in todo if r["kind"] == "REFUND" and r["reference"]}
    locked: dict[bytes, int] = {}
    if refunded:
        found = await session.execute(select(Payment.onchain_id, Payment.rate_fixed).where(
            Payment.onchain_id.in_(sorted(refunded))))
        locked = {bytes(pid): int(rate) for pid, rate in found}
    for r in todo:
        if r["kind"] == "REFUND" and r["reference"]:
            r["rate"] = locked.get(bytes.fromhex(str(r["reference"])[2:]))
    unpriced = [r for r in todo if r["rate"] is None]
    if unpriced:
        answers = await oracle_answers_at(session, int(cast(int, unpriced[0]["chain_id"])),
                                          [(cast(int, r["block_number"]), cast(int, r["log_index"])) for r in unpriced])
        for r in unpriced:
            r["rate"] = answers.get((cast(int, r["block_number"]), cast(int, r["log_index"])))
    for r in todo:
        rate = r["rate"]
        if not isinstance(rate, int) or not 0 < rate <= MAX_BIGINT:
            r["rate"] = None
            continue
        # signed like the amount (outflows are negative), rounded toward zero like the credits
        r["fiat_cents"] = -(-cast(int, r["amount"]) * rate // RATE_TO_CENTS)


async def oracle_answers_at(session: AsyncSession, chain_id: int, positions: list[tuple[int, int]]
                            ) -> dict[tuple[int, int], int]:
    """(block, log index) -> the oracle's answer in effect there: the latest indexed ``AnswerUpdated``
    at or before it (only the node's oracle emits it among the logs the indexer stores)."""
    if not positions:
        return {}
    low, high = min(positions), max(positions)
    answer = ChainLog.topics[2]  # `current`, the answer (int256, indexed), LKR per USDT x 1e8
    where = (ChainLog.chain_id == chain_id, ChainLog.event == "AnswerUpdated")
    # the answers inside the batch's span, and the one in effect at its start
    inside = (await session.execute(
        select(ChainLog.block_number, ChainLog.log_index, answer).where(
            *where, ChainLog.block_number >= low[0], ChainLog.block_number <= high[0])
    )).all()
    before = (await session.execute(
        select(ChainLog.block_number, ChainLog.log_index, answer).where(*where, ChainLog.block_number < low[0])
        .order_by(ChainLog.block_number.desc(), ChainLog.log_index.desc()).limit(1)
    )).all()
    history = sorted(((int(b), int(i)), _int256(str(topic))) for b, i, topic in [*before, *inside])
    keys = [key for key, _ in history]
    found: dict[tuple[int, int], int] = {}
    for position in positions:
        at = bisect_right(keys, position)
        if at:
            found[position] = history[at - 1][1]
    return found


def _int256(topic: str) -> int:
    value = int(topic, 16)
    return value - 2**256 if value >= 2**255 else value


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
    """Money promised but not yet debited on chain: withdrawals, settlement batches and refunds in
    flight (each of the three checks the others' promises before it promises more)."""
    withdrawals = select(func.coalesce(func.sum(Withdrawal.amount), 0)).where(
        Withdrawal.merchant_id == merchant_id, Withdrawal.chain_id == chain_id, Withdrawal.token == token,
        Withdrawal.status.in_(IN_FLIGHT_WITHDRAWALS)).scalar_subquery()
    batches = select(func.coalesce(func.sum(SettlementBatch.amount), 0)).where(
        SettlementBatch.merchant_id == merchant_id, SettlementBatch.chain_id == chain_id,
        SettlementBatch.token == token, SettlementBatch.status.in_(IN_FLIGHT_BATCHES)).scalar_subquery()
    refunds = select(func.coalesce(func.sum(Refund.amount_units), 0)).join(
        Payment, Payment.id == Refund.payment_id).where(
        Refund.merchant_id == merchant_id, Payment.chain_id == chain_id, Payment.token == token,
        Refund.status.in_(REFUNDS_IN_FLIGHT)).scalar_subquery()
    return int((await session.execute(select(withdrawals + batches + refunds))).scalar_one())


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


@dataclass(frozen=True)
class UnsweptDeposit:
    """Money at a payment's deposit address that no final ``DepositSwept`` has moved yet."""

    onchain_id: bytes
    amount: int  # the intent's amount and fee: the sweep charges received * fee // amount
    fee: int
    rate_fixed: int
    transferred: int  # token transfers to the deposit address, final or not
    swept: int  # received by final sweeps


async def unswept_deposits(session: AsyncSession, chain_id: int, merchant_id: uuid.UUID, token: str
                           ) -> list[UnsweptDeposit]:
    """The merchant's payments whose deposit address received more than final sweeps took, from
    the payments' indexed receipts (reorged transfers are deleted there, so they drop out)."""
    transferred = func.sum(Receipt.amount)
    rows = await session.execute(
        select(Payment.onchain_id, Payment.amount_units, Payment.exchange_fee_units + Payment.platform_fee_units,
               Payment.rate_fixed, transferred, Payment.swept)
        .join(Receipt, Receipt.payment_id == Payment.id)
        .where(Payment.merchant_id == merchant_id, Payment.chain_id == chain_id, Payment.token == token,
               Receipt.kind == "TRANSFER")
        .group_by(Payment.id).having(transferred > Payment.swept)
    )
    return [UnsweptDeposit(bytes(pid), int(amount), int(fee), int(rate), int(sent), int(swept))
            for pid, amount, fee, rate, sent, swept in rows]


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
