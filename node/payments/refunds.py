"""Refunds: REQUESTED -> APPROVED -> SUBMITTED -> COMPLETED | FAILED (REJECTED by a reviewer).

Bounded by what the payment received minus what is refunded or in flight, and by the merchant's
on-chain balance (deposits count once swept). Approval is automatic today: the settlement
domain's threshold review slots in between REQUESTED and APPROVED. The operator sends
``refund(paymentId, merchantId, token, to, amount)``; the payment becomes refunded /
partially_refunded only when the ``Refunded`` event is final.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from eth_utils.address import is_address, to_checksum_address
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chain.errors import ChainError
from chain.events import Refunded
from node.bus import announce
from node.config import Settings
from node.db import Database
from node.errors import Conflict, NotFound, ValidationFailed
from node.money import format_units
from node.payments import onchain
from node.payments.models import Payment, Receipt, Refund
from node.payments.schemas import rfc3339
from node.payments.service import announce_state

log = structlog.get_logger(__name__)

REFUNDABLE = ("paid", "overpaid", "underpaid", "partially_refunded", "late", "failed")
IN_FLIGHT = ("REQUESTED", "APPROVED", "SUBMITTED")


class RefundNotAllowed(Conflict):
    code = "REFUND_NOT_ALLOWED"


class InsufficientBalance(Conflict):
    code = "INSUFFICIENT_BALANCE"


def refund_object(r: Refund, mode: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(r.id), "paymentId": str(r.payment_id), "merchantId": str(r.merchant_id),
        "amountUsdt": format_units(r.amount_units), "toAddress": r.to_address, "reason": r.reason or "",
        "status": r.status, "txHash": r.tx_hash or "", "createdAt": rfc3339(r.created_at),
        "updatedAt": rfc3339(r.updated_at),
    }
    if r.completed_at:
        out["completedAt"] = rfc3339(r.completed_at)
    if r.error:
        out["error"] = r.error
    if mode:
        out["mode"] = mode
    return out


async def _announce(session: AsyncSession, r: Refund, mode: str) -> None:
    await announce(session, f"refund.{r.status.lower()}", refund_object(r, mode), key=str(r.payment_id))


async def request_refund(session: AsyncSession, settings: Settings, p: Payment, *, amount_units: int | None,
                         to_address: str | None, reason: str | None, requested_by: str,
                         idempotency_key: str | None = None) -> Refund:
    """Creates an approved refund (the caller holds the payment row locked)."""
    from node.settlement import repository as balances

    if idempotency_key:
        existing = (await session.execute(select(Refund).where(
            Refund.merchant_id == p.merchant_id, Refund.idempotency_key == idempotency_key))).scalar_one_or_none()
        if existing is not None:
            if existing.payment_id != p.id or (amount_units is not None and existing.amount_units != amount_units):
                raise Conflict("this Idempotency-Key was used for another refund", code="IDEMPOTENCY_KEY_REUSED")
            return existing
    if p.status not in REFUNDABLE or p.received_final == 0:
        raise RefundNotAllowed(f"a {p.status} payment cannot be refunded")
    in_flight = int((await session.execute(select(func.coalesce(func.sum(Refund.amount_units), 0)).where(
        Refund.payment_id == p.id, Refund.status.in_(IN_FLIGHT)))).scalar_one())
    refundable = p.received_final - p.refunded_units - in_flight
    if refundable <= 0:
        raise RefundNotAllowed("nothing left to refund on this payment")
    amount = refundable if amount_units is None else amount_units
    if amount <= 0:
        raise ValidationFailed("amount must be positive")
    if amount > refundable:
        raise ValidationFailed(f"amount exceeds the refundable {format_units(refundable)} USDT")
    if to_address is None:
        kinds = set((await session.execute(select(Receipt.kind).where(Receipt.payment_id == p.id))).scalars())
        if kinds != {"PAY"} or not p.payer:
            # a transfer may come from an exchange's hot wallet: refunding there loses the money
            raise ValidationFailed("toAddress is required: this payment was a transfer (maybe from an exchange)")
        to_address = p.payer
    if not is_address(to_address):
        raise ValidationFailed("toAddress is not an address")
    await balances.lock_merchant(session, p.merchant_id)
    available = await balances.available(session, p.chain_id, p.merchant_key, p.token.lower())
    # withdrawals and settlement batches in flight have promised part of it already
    available -= await balances.reserved(session, p.chain_id, p.merchant_id, p.token.lower())
    pending = int((await session.execute(select(func.coalesce(func.sum(Refund.amount_units), 0)).where(
        Refund.merchant_id == p.merchant_id, Refund.status.in_(IN_FLIGHT)))).scalar_one())
    if amount + pending > available:
        raise InsufficientBalance(
            f"the merchant balance ({format_units(max(0, available - pending))} USDT available) does not cover "
            "this refund; deposits count once swept")
    refund = Refund(payment_id=p.id, merchant_id=p.merchant_id, amount_units=amount,
                    to_address=to_checksum_address(to_address), reason=(reason or "")[:1000] or None,
                    status="REQUESTED", onchain_ref=p.onchain_id, idempotency_key=idempotency_key,
                    requested_by=requested_by)
    session.add(refund)
    await session.flush()
    await _announce(session, refund, p.mode)
    # approval: automatic until the settlement domain's threshold review takes this slot
    refund.status = "APPROVED"
    await _announce(session, refund, p.mode)
    if p.status == "late":
        p.late_decision = "REFUND"
    return refund


async def submit_approved(db: Database, settings: Settings, sender: onchain.Operator, *, limit: int = 20) -> int:
    """Sends APPROVED refunds on chain, one transaction per refund (each in its own DB unit)."""
    dep = onchain.deployment(settings)
    art = onchain.artifacts()["OpenPayGateway"]
    done = 0
    for _ in range(limit):
        async with db.unit_of_work() as session:
            refund = (await session.execute(select(Refund).where(Refund.status == "APPROVED")
                                            .order_by(Refund.created_at).limit(1)
                                            .with_for_update(skip_locked=True))).scalar_one_or_none()
            if refund is None:
                return done
            payment = await session.get(Payment, refund.payment_id)
            assert payment is not None
            data = art.encode_call("refund", refund.onchain_ref, payment.merchant_key,
                                   to_checksum_address(payment.token), refund.to_address, int(refund.amount_units))
            try:
                receipt = await sender.sender.send(dep.gateway, data)
                refund.status, refund.tx_hash = "SUBMITTED", receipt.tx_hash
            except ChainError as exc:
                log.warning("refund failed on chain", refund=str(refund.id), error=str(exc)[:300])
                refund.status, refund.error = "FAILED", str(exc)[:1000]
            refund.updated_at = datetime.now(UTC)
            await _announce(session, refund, payment.mode)
            done += 1
    return done


async def refund_completed(session: AsyncSession, settings: Settings, event: Refunded) -> None:
    """A final ``Refunded`` event: complete our refund (matched by tx) and move the payment."""
    payment = (await session.execute(select(Payment).where(Payment.onchain_id == event.payment_id)
                                     .with_for_update())).scalar_one_or_none()
    if payment is None:
        return
    refund = (await session.execute(select(Refund).where(
        Refund.payment_id == payment.id, Refund.status.in_(("SUBMITTED", "APPROVED", "FAILED")),
        func.lower(Refund.to_address) == event.to, Refund.amount_units == event.amount)
        .order_by((Refund.tx_hash == event.transaction_hash).desc(), Refund.created_at).limit(1)
    )).scalar_one_or_none()
    now = datetime.now(UTC)
    if refund is not None:
        refund.status, refund.tx_hash, refund.completed_at, refund.updated_at = (
            "COMPLETED", event.transaction_hash, now, now)
        refund.error = None
        await _announce(session, refund, payment.mode)
    payment.refunded_units = payment.refunded_units + event.amount
    payment.status = "refunded" if payment.refunded_units >= payment.received_final else "partially_refunded"
    payment.updated_at = now
    await announce_state(session, settings, payment, payment.status)


async def list_for_payment(session: AsyncSession, payment_id: uuid.UUID) -> list[Refund]:
    return list((await session.execute(select(Refund).where(Refund.payment_id == payment_id)
                                       .order_by(Refund.created_at))).scalars())


async def get_owned(session: AsyncSession, merchant_id: uuid.UUID, refund_id: uuid.UUID) -> Refund:
    refund = (await session.execute(select(Refund).where(Refund.id == refund_id, Refund.merchant_id == merchant_id)
                                    )).scalar_one_or_none()
    if refund is None:
        raise NotFound("refund not found")
    return refund
