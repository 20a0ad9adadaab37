"""What the chain says about the node's own sends: state changes from final events and from
send outcomes (mined, reverted, dropped). Each in the caller's transaction, with its announcement."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chain.events import ChainEvent, PayoutAddressSet, SettlementInitiated, TreasuryWithdrawal, Withdrawal
from node.bus import announce
from node.exchange.treasury_models import TreasuryWithdrawalRequest
from node.payments import refunds
from node.settlement import repository as repo
from node.settlement.models import ChainSend, PayoutAddress, SettlementBatch
from node.settlement.models import Withdrawal as WithdrawalRow
from node.settlement.sender import SendOutcome
from node.settlement.service import batch_data, withdrawal_data

log = structlog.get_logger(__name__)


async def apply_final(session: AsyncSession, chain_id: int, events: Sequence[ChainEvent]) -> None:
    sends = await repo.sends_by_hashes(session, [e.transaction_hash for e in events])
    now = datetime.now(UTC)
    for event in events:
        send = sends.get(event.transaction_hash)
        if send is None:
            continue  # sent by someone else (an operator by hand): the ledger has it, nothing to complete
        if isinstance(event, Withdrawal) and send.purpose == "withdrawal":
            w = await session.get(WithdrawalRow, send.object_id, with_for_update=True)
            if w is None or w.status == "COMPLETED":
                continue
            if w.status != "SUBMITTED":
                log.warning("settlement.withdrawal_completed_from", status=w.status, id=str(w.id))
            w.status, w.tx_hash, w.block_number, w.completed_at, w.updated_at = (
                "COMPLETED", event.transaction_hash, event.block_number, now, now)
            w.reason = None
            await session.flush()
            await announce(session, "withdrawal.completed", withdrawal_data(w), key=str(w.id))
        elif isinstance(event, SettlementInitiated) and send.purpose == "settlement":
            b = await session.get(SettlementBatch, send.object_id, with_for_update=True)
            if b is None or b.status in ("SETTLED_ON_CHAIN", "PAID"):
                continue
            b.status, b.tx_hash, b.block_number, b.updated_at = (
                "SETTLED_ON_CHAIN", event.transaction_hash, event.block_number, now)
            b.rate_fixed, b.fiat_cents = event.rate, event.fiat_amount
            await session.flush()
            await announce(session, "settlement.initiated", batch_data(b), key=str(b.id))
        elif isinstance(event, PayoutAddressSet) and send.purpose == "payout_address":
            p = await session.get(PayoutAddress, send.object_id, with_for_update=True)
            if p is None or p.status == "ACTIVE":
                continue
            await session.execute(update(PayoutAddress).where(
                PayoutAddress.merchant_id == p.merchant_id, PayoutAddress.status == "ACTIVE",
                PayoutAddress.chain_id == chain_id).values(status="REPLACED"))
            p.status, p.tx_hash, p.activated_at = "ACTIVE", event.transaction_hash, now
        elif isinstance(event, TreasuryWithdrawal) and send.purpose == "treasury":
            t = await session.get(TreasuryWithdrawalRequest, send.object_id, with_for_update=True)
            if t is None or t.status == "COMPLETED":
                continue
            t.status, t.tx_hash, t.updated_at = "COMPLETED", event.transaction_hash, now


async def on_outcome(session: AsyncSession, send: ChainSend, outcome: SendOutcome) -> None:
    """A send was mined (the final event completes it later), reverted or dropped (FAILED, which
    releases the reservation: reservations are the in-flight rows)."""
    failed = outcome.status in ("REVERTED", "DROPPED")
    now = datetime.now(UTC)
    if send.purpose == "withdrawal":
        w = await session.get(WithdrawalRow, send.object_id, with_for_update=True)
        if w is None or w.status in ("COMPLETED", "FAILED"):
            return
        w.nonce = outcome.nonce if outcome.nonce is not None else w.nonce
        if outcome.tx_hash:
            w.tx_hash = outcome.tx_hash
            w.block_number = outcome.block_number
        if failed:
            w.status, w.reason, w.updated_at = "FAILED", outcome.reason, now
            await session.flush()
            await announce(session, "withdrawal.failed", withdrawal_data(w), key=str(w.id))
    elif send.purpose == "settlement":
        b = await session.get(SettlementBatch, send.object_id, with_for_update=True)
        if b is None or b.status not in ("REQUESTED", "SUBMITTED"):
            return
        if outcome.tx_hash:
            b.tx_hash, b.block_number = outcome.tx_hash, outcome.block_number
        if failed:
            b.status, b.reason, b.updated_at = "FAILED", outcome.reason, now
            await session.flush()
            await announce(session, "settlement.failed", batch_data(b), key=str(b.id))
    elif send.purpose == "payout_address":
        p = await session.get(PayoutAddress, send.object_id, with_for_update=True)
        if p is not None and p.status == "SUBMITTED":
            p.tx_hash = outcome.tx_hash or p.tx_hash
            if failed:
                p.status = "FAILED"
    elif send.purpose == "refund":
        await refunds.on_send_outcome(session, send.object_id, status=outcome.status, tx_hash=outcome.tx_hash,
                              reason=outcome.reason)
    elif send.purpose == "treasury":
        t = await session.get(TreasuryWithdrawalRequest, send.object_id, with_for_update=True)
        if t is not None and t.status == "SUBMITTED":
            t.tx_hash = outcome.tx_hash or t.tx_hash
            if failed:
                t.status, t.reason, t.updated_at = "FAILED", outcome.reason, now


async def send_for(session: AsyncSession, send_id: uuid.UUID) -> ChainSend:
    return (await session.execute(select(ChainSend).where(ChainSend.id == send_id))).scalar_one()
