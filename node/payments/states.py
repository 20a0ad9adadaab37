"""Payment states from what the chain showed (``payments.receipts``), and the transitions the
scheduler makes (expiry). Every change announces ``payment.<state>`` in the same transaction.

initiated -> pending (seen, not final) -> paid | overpaid | underpaid (final); a reorg that drops
the receipts takes pending back to initiated (``payment.reverted``); initiated past its deadline
-> expired, underpaid past it -> failed; money arriving after that -> late (held for the
merchant: accept or refund); Refunded events -> partially_refunded | refunded.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from node.config import Settings
from node.errors import Conflict
from node.payments.models import Payment, Receipt
from node.payments.service import announce_state

# the event announced when a payment enters a state (overpaid is paid to plugins: status PAID)
EVENT_OF = {"pending": "pending", "paid": "paid", "overpaid": "paid", "underpaid": "underpaid",
            "expired": "expired", "failed": "failed", "late": "late", "refunded": "refunded",
            "partially_refunded": "partially_refunded", "initiated": "reverted"}
TERMINAL_REFUND = ("refunded", "partially_refunded")


def _target(p: Payment, seen: int, final: int) -> str:
    if p.status in TERMINAL_REFUND:
        return p.status
    closed = p.status in ("expired", "failed", "late")
    if p.late and p.late_decision != "ACCEPTED":
        return "late" if seen > 0 else ("failed" if final > 0 else "expired")
    if seen == 0:
        return "expired" if closed else "initiated"
    if closed and p.late_decision != "ACCEPTED":
        return "late"
    if final >= p.amount_units:
        return "overpaid" if final > p.amount_units else "paid"
    if seen > final:
        return "pending"
    return "underpaid"


async def recompute(session: AsyncSession, settings: Settings, payment_ids: Iterable[uuid.UUID]) -> list[Payment]:
    """Re-derive each payment's chain fields and state from its receipts; announce changes.
    A reorg deletes receipts and calls this again, so the sums (``deposited_final`` too) follow."""
    ids = sorted(set(payment_ids))
    if not ids:
        return []
    # one array parameter: a backfill batch may touch more payments than a statement has parameters
    wanted = bindparam(None, ids, type_=ARRAY(PG_UUID(as_uuid=True)))
    payments = list((await session.execute(
        select(Payment).where(Payment.id == any_(wanted)).order_by(Payment.id).with_for_update())).scalars())
    sums = {row.payment_id: row for row in (await session.execute(
        select(Receipt.payment_id, func.coalesce(func.sum(Receipt.amount), 0).label("seen"),
               func.coalesce(func.sum(Receipt.amount).filter(Receipt.final), 0).label("final"),
               # what the sweeper may collect: only transfers wait at the deposit address
               func.coalesce(func.sum(Receipt.amount).filter(Receipt.final, Receipt.kind == "TRANSFER"), 0)
               .label("deposited"))
        .where(Receipt.payment_id == any_(wanted)).group_by(Receipt.payment_id)))}
    last = {row.payment_id: row for row in (await session.execute(
        select(Receipt).distinct(Receipt.payment_id).where(Receipt.payment_id == any_(wanted))
        .order_by(Receipt.payment_id, Receipt.block_number.desc(), Receipt.log_index.desc()))).scalars()}
    changed: list[Payment] = []
    now = datetime.now(UTC)
    for p in payments:
        agg = sums.get(p.id)
        seen, final, deposited = (int(agg.seen), int(agg.final), int(agg.deposited)) if agg else (0, 0, 0)
        if seen > 0 and p.status in ("expired", "failed") and p.received_seen == 0 and p.late_decision is None:
            p.late = True
        target = _target(p, seen, final)
        receipt = last.get(p.id)
        p.received_seen, p.received_final, p.deposited_final = seen, final, deposited
        p.tx_hash = receipt.tx_hash if receipt else None
        p.payer = receipt.payer if receipt else None
        p.block_number = receipt.block_number if receipt else None
        if target in ("paid", "overpaid") and p.paid_at is None:
            p.paid_at = now
        if target in ("initiated", "pending", "expired", "late") and final == 0:
            p.paid_at = None
        if target != p.status:
            if target in ("paid", "overpaid") and p.link_id is not None and p.status not in ("paid", "overpaid"):
                from node.payments.links import count_use

                await count_use(session, p.link_id)
            previous = p.status
            p.status = target
            p.updated_at = now
            event = EVENT_OF[target]
            if target == "initiated" and previous != "pending":
                event = "reverted"
            await announce_state(session, settings, p, event)
            changed.append(p)
        else:
            p.updated_at = now
    return changed


async def expire_due(session: AsyncSession, settings: Settings, *, limit: int = 500) -> int:
    """initiated past the deadline (plus a grace for indexer lag) -> expired; underpaid -> failed."""
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.payment_expiry_grace_s)
    due = list((await session.execute(
        select(Payment).where(Payment.status.in_(("initiated", "underpaid")), Payment.expire_at < cutoff)
        .order_by(Payment.expire_at).limit(limit).with_for_update(skip_locked=True))).scalars())
    now = datetime.now(UTC)
    for p in due:
        p.status = "expired" if p.status == "initiated" else "failed"
        p.updated_at = now
        await announce_state(session, settings, p, p.status)
    return len(due)


async def decide_late(session: AsyncSession, settings: Settings, p: Payment, decision: str) -> Payment:
    """The merchant's answer to money that arrived after expiry: ACCEPTED counts it as paid
    (paid/underpaid/overpaid by the amount); REFUND is recorded here and sent by a refund."""
    if not p.late or p.status != "late":
        raise Conflict("only a late payment can be accepted or refunded", code="INVALID_TRANSITION")
    if p.late_decision is not None:
        raise Conflict(f"already decided: {p.late_decision}", code="INVALID_TRANSITION")
    p.late_decision = decision
    if decision == "ACCEPTED":
        await session.flush()
        await recompute(session, settings, [p.id])
    else:
        await session.execute(update(Payment).where(Payment.id == p.id).values(late_decision=decision))
    return p
