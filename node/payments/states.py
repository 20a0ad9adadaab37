"""Payment states from what the chain showed (``payments.receipts``), and the transitions the
scheduler makes (expiry). Every change announces ``payment.<state>`` in the same transaction.

initiated -> pending (seen, not final) -> paid | overpaid | underpaid (final); initiated past its
deadline -> expired, underpaid past it -> failed. Money in a block whose timestamp is past the
payment's deadline (``Receipt.after_expiry``, set from the block, not from whether the expiry job
ran) makes a payment that was not paid in full before it ``late``: held for the merchant (accept or
refund), ``late_from`` remembering the closed state it came from (expired or failed). A reorg that
drops receipts takes the payment back to the state the remaining receipts give and announces
``payment.reverted`` (with ``revertedFrom``); Refunded events -> partially_refunded | refunded.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from node.bus import announce
from node.config import Settings
from node.errors import Conflict
from node.indexing.models import ChainCursor
from node.payments.models import Payment, Receipt
from node.payments.schemas import payment_object

# the event announced when a payment enters a state (overpaid is paid to plugins: status PAID)
EVENT_OF = {"pending": "pending", "paid": "paid", "overpaid": "paid", "underpaid": "underpaid",
            "expired": "expired", "failed": "failed", "late": "late", "refunded": "refunded",
            "partially_refunded": "partially_refunded", "initiated": "reverted"}
TERMINAL_REFUND = ("refunded", "partially_refunded")
CLOSED = ("expired", "failed", "late")


def _target(p: Payment, on_seen: int, on_final: int, late_seen: int, late_final: int) -> tuple[str, str | None]:
    """The state the receipts give (and, when ``late``, the closed state the late money found).
    ``on_*``: money in blocks up to the deadline; ``late_*``: in blocks after it."""
    if p.status in TERMINAL_REFUND:
        return p.status, None
    if p.late_decision == "ACCEPTED" or on_seen >= p.amount_units:
        # paid in time (late money on top is overpayment), or the merchant took the late money
        seen, final = on_seen + late_seen, on_final + late_final
        if seen == 0:
            return "expired", None
        if final >= p.amount_units:
            return ("overpaid" if final > p.amount_units else "paid"), None
        if seen > final:
            return "pending", None
        return "underpaid", None
    closed_as = "failed" if on_seen > 0 else "expired"
    if late_seen > 0:
        return "late", closed_as
    if p.status in CLOSED:  # past its deadline (the expiry job, or late money that a reorg took away)
        return closed_as, None
    if on_seen == 0:
        return "initiated", None
    return ("pending" if on_seen > on_final else "underpaid"), None


async def indexed_heads(session: AsyncSession, chain_ids: Iterable[int], *, ttl: float = 1.0) -> dict[int, int]:
    """The last block the indexer committed, per chain (its cursor): what confirmations count to.
    Cached ``ttl`` seconds per process (reads answer it; pass 0 for a fresh read)."""
    now = time.monotonic()
    wanted = set(chain_ids)
    out = {c: hit[1] for c in wanted if (hit := _heads.get(c)) is not None and now - hit[0] < ttl}
    missing = wanted - out.keys()
    if missing:
        for chain_id, number in await session.execute(
                select(ChainCursor.chain_id, ChainCursor.block_number).where(ChainCursor.chain_id.in_(missing))):
            out[chain_id] = int(number)
            _heads[chain_id] = (now, int(number))
    return out


_heads: dict[int, tuple[float, int]] = {}


async def announce_payment(session: AsyncSession, settings: Settings, p: Payment, event: str, *,
                           head: int | None = None, **extra: Any) -> None:
    """``payment.<event>``: the SDK Payment object (+ ``extra``), keyed by the payment id."""
    data = payment_object(p, settings.public_url, head=head)
    data.update(extra)
    await announce(session, f"payment.{event}", data, key=str(p.id))


async def recompute(session: AsyncSession, settings: Settings, payment_ids: Iterable[uuid.UUID], *,
                    reverted: bool = False, head: int | None = None) -> list[Payment]:
    """Re-derive each payment's chain fields and state from its receipts; announce changes.
    A reorg deletes receipts and calls this again with ``reverted``: a change it makes is announced
    as ``payment.reverted``. ``head``: the highest block of the indexer's batch (confirmations)."""
    ids = sorted(set(payment_ids))
    if not ids:
        return []
    # one array parameter: a backfill batch may touch more payments than a statement has parameters
    wanted = bindparam(None, ids, type_=ARRAY(PG_UUID(as_uuid=True)))
    payments = list((await session.execute(
        select(Payment).where(Payment.id == any_(wanted)).order_by(Payment.id).with_for_update())).scalars())
    on_time, late = ~Receipt.after_expiry, Receipt.after_expiry
    sums = {row.payment_id: row for row in (await session.execute(
        select(Receipt.payment_id,
               func.coalesce(func.sum(Receipt.amount).filter(on_time), 0).label("on_seen"),
               func.coalesce(func.sum(Receipt.amount).filter(on_time, Receipt.final), 0).label("on_final"),
               func.coalesce(func.sum(Receipt.amount).filter(late), 0).label("late_seen"),
               func.coalesce(func.sum(Receipt.amount).filter(late, Receipt.final), 0).label("late_final"),
               # what the sweeper may collect: only transfers wait at the deposit address
               func.coalesce(func.sum(Receipt.amount).filter(Receipt.final, Receipt.kind == "TRANSFER"), 0)
               .label("deposited"))
        .where(Receipt.payment_id == any_(wanted)).group_by(Receipt.payment_id)))}
    last = {row.payment_id: row for row in (await session.execute(
        select(Receipt).distinct(Receipt.payment_id).where(Receipt.payment_id == any_(wanted))
        .order_by(Receipt.payment_id, Receipt.block_number.desc(), Receipt.log_index.desc()))).scalars()}
    changed: list[Payment] = []
    now = datetime.now(UTC)
    heads: dict[int, int] | None = None
    for p in payments:
        agg = sums.get(p.id)
        on_seen, on_final, late_seen, late_final, deposited = (
            (int(agg.on_seen), int(agg.on_final), int(agg.late_seen), int(agg.late_final), int(agg.deposited))
            if agg else (0, 0, 0, 0, 0))
        target, late_from = _target(p, on_seen, on_final, late_seen, late_final)
        seen, final = on_seen + late_seen, on_final + late_final
        receipt = last.get(p.id)
        p.received_seen, p.received_final, p.deposited_final = seen, final, deposited
        p.tx_hash = receipt.tx_hash if receipt else None
        p.payer = receipt.payer if receipt else None
        p.block_number = receipt.block_number if receipt else None
        # money after the deadline, or a decision on such money: shown as late (decided or not)
        p.late = late_seen > 0 or p.late_decision is not None
        if target not in TERMINAL_REFUND:
            p.late_from = late_from
        if target in ("paid", "overpaid") and p.paid_at is None:
            p.paid_at = now
        if target in ("initiated", "pending", "expired", "late", "failed") and final == 0:
            p.paid_at = None
        if target != p.status:
            if target in ("paid", "overpaid") and p.link_id is not None and p.status not in ("paid", "overpaid"):
                from node.payments.links import count_use

                await count_use(session, p.link_id)
            previous = p.status
            p.status = target
            p.updated_at = now
            if heads is None:
                heads = await indexed_heads(session, {q.chain_id for q in payments}, ttl=0)
            at = max(head or 0, heads.get(p.chain_id, 0)) or None
            if reverted:
                await announce_payment(session, settings, p, "reverted", head=at, revertedFrom=previous)
            elif previous == "paid" and target == "overpaid":  # a top-up after paid: paid is told once
                await announce_payment(session, settings, p, "overpaid", head=at)
            else:
                await announce_payment(session, settings, p, EVENT_OF[target], head=at)
            changed.append(p)
        else:
            p.updated_at = now
    return changed


async def expire_due(session: AsyncSession, settings: Settings, *, limit: int = 500,
                     payment_ids: Iterable[uuid.UUID] | None = None, grace_s: float | None = None) -> int:
    """initiated past the deadline (plus a grace for indexer lag) -> expired; underpaid -> failed.
    An underpaid payment whose late money the merchant accepted is what the merchant took: left.
    ``payment_ids``: only these (a callback); ``grace_s``: instead of ``payment_expiry_grace_s``."""
    grace = settings.payment_expiry_grace_s if grace_s is None else grace_s
    cutoff = datetime.now(UTC) - timedelta(seconds=grace)
    only = [] if payment_ids is None else [Payment.id.in_(list(payment_ids))]
    due = list((await session.execute(
        select(Payment).where(Payment.status.in_(("initiated", "underpaid")), Payment.expire_at < cutoff,
                              Payment.late_decision.is_(None), *only)
        .order_by(Payment.expire_at).limit(limit).with_for_update(skip_locked=True))).scalars())
    now = datetime.now(UTC)
    for p in due:
        p.status = "expired" if p.status == "initiated" else "failed"
        p.updated_at = now
        await announce_payment(session, settings, p, p.status)
    return len(due)


async def decide_late(session: AsyncSession, settings: Settings, p: Payment, decision: str) -> Payment:
    """The merchant's answer to money that arrived after expiry: ACCEPTED counts it as paid
    (paid/underpaid/overpaid by the amount); REFUND is recorded here and sent by a refund."""
    if p.status != "late":
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


async def wire_objects(session: AsyncSession, public_url: str, payments: list[Payment]) -> list[dict[str, Any]]:
    """The payments' wire objects, ``confirmations`` counted to their chains' indexed heads."""
    heads = await indexed_heads(session, {p.chain_id for p in payments if p.block_number is not None})
    return [payment_object(p, public_url, head=heads.get(p.chain_id)) for p in payments]


async def wire_object(session: AsyncSession, public_url: str, payment: Payment) -> dict[str, Any]:
    return (await wire_objects(session, public_url, [payment]))[0]
