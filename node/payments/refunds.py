"""Refunds: REQUESTED -> APPROVED | PENDING_APPROVAL -> SUBMITTED -> COMPLETED | FAILED
(REJECTED by an administrator).

Bounded by what the payment received minus what is refunded or in flight (PENDING_APPROVAL included:
a refund waiting for review holds its amount until it is rejected), and by the merchant's on-chain
balance (deposits count once swept). A refund to the payer's address (the ``pay`` receipt's sender)
within ``limits.refundApprovalThresholdUsdt`` is approved at once; one to another address, above the
threshold, or of a payment paid by plain transfer (the sender may be an exchange's hot wallet, so the
merchant gives the address) waits for an administrator. Another address than the payer's may come
only from a portal user, never from an API key (a leaked key must not be able to send a merchant's
money anywhere), except for transfer-paid payments where there is no payer address to use.

The chain sender (``node.settlement.tasks.ChainSender``) sends approved refunds exactly once through
``settlement.chain_sends`` (purpose ``refund``): the intent is recorded with SUBMITTED before anything
is broadcast, a transaction not mined in time stays in flight and is reconciled, and only a revert or
a dropped (cancelled) transaction makes a refund FAILED. The payment becomes refunded /
partially_refunded only when the ``Refunded`` event is final.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from eth_utils.address import is_address, is_checksum_address, to_checksum_address
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from chain.events import Refunded
from node.auth.context import RequestMeta
from node.bus import announce
from node.config import Settings
from node.db.paging import page
from node.errors import Conflict, Forbidden, NotFound, ValidationFailed
from node.money import format_units
from node.payments import states
from node.payments.models import REFUNDS_IN_FLIGHT, Payment, Receipt, Refund
from node.payments.schemas import rfc3339
from node.settlement.errors import InvalidTransition

log = structlog.get_logger(__name__)

REFUNDABLE = ("paid", "overpaid", "underpaid", "partially_refunded", "late", "failed")
ZERO_ADDRESS = "0x" + "0" * 40


class RefundNotAllowed(Conflict):
    code = "REFUND_NOT_ALLOWED"


class InsufficientBalance(Conflict):
    code = "INSUFFICIENT_BALANCE"


class RefundAddressNotAllowed(Forbidden):
    code = "REFUND_ADDRESS_NOT_ALLOWED"


class RefundModeNotAllowed(Forbidden):
    code = "REFUND_MODE_NOT_ALLOWED"


class RefundNotFound(NotFound):
    code = "REFUND_NOT_FOUND"


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
    if r.review_reason:
        out["reviewReason"] = r.review_reason
    if r.decided_at:
        out["decidedAt"] = rfc3339(r.decided_at)
    if r.decision_note:
        out["decisionNote"] = r.decision_note
    if mode:
        out["mode"] = mode
    return out


async def _announce(session: AsyncSession, r: Refund, mode: str) -> None:
    await announce(session, f"refund.{r.status.lower()}", refund_object(r, mode), key=str(r.payment_id))


async def payer_of(session: AsyncSession, p: Payment) -> str | None:
    """The address the payment's money came from, when a refund may go back there: the sender of its
    ``pay`` receipts. None when any of it came by plain transfer (maybe from an exchange's hot wallet,
    where a refund is lost) or from more than one sender."""
    rows = (await session.execute(select(Receipt.kind, Receipt.payer).where(Receipt.payment_id == p.id))).all()
    if not rows or any(kind != "PAY" for kind, _ in rows):
        return None
    payers = {payer.lower() for _, payer in rows}
    return payers.pop() if len(payers) == 1 else None


def _address(value: str) -> str:
    if not is_address(value) or value.lower() == ZERO_ADDRESS:
        raise ValidationFailed("toAddress must be a 0x-prefixed 20-byte address (BSC)")
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(value):
        # mixed case is an EIP-55 checksum (is_address does not check it): a wrong one is a typo, and
        # a refund to a mistyped address is lost
        raise ValidationFailed("toAddress has an invalid EIP-55 checksum (mistyped?)")
    return value.lower()


async def request_refund(session: AsyncSession, settings: Settings, p: Payment, *, amount_units: int | None,
                         to_address: str | None, reason: str | None, requested_by: str, by_portal_user: bool,
                         idempotency_key: str | None = None, key_mode: str | None = None) -> Refund:
    """Creates a refund, APPROVED or PENDING_APPROVAL (the caller holds the payment row locked and
    handles the Idempotency-Key). ``key_mode``: the API key's mode (None for a portal user)."""
    from node.settlement import repository as balances
    from node.settlement.service import refund_needs_approval

    if key_mode is not None and key_mode != p.mode:
        # a test key (kept in test setups) must not send a live payment's money back, nor a live key a test one's
        raise RefundModeNotAllowed(f"a {key_mode} API key cannot refund a {p.mode} payment")

    if reason and "\x00" in reason:  # PostgreSQL stores no NUL: refused here, not by a failing INSERT
        raise ValidationFailed("reason must not contain NUL")
    if p.status not in REFUNDABLE or p.received_final == 0:
        raise RefundNotAllowed(f"a {p.status} payment cannot be refunded")
    in_flight = int((await session.execute(select(func.coalesce(func.sum(Refund.amount_units), 0)).where(
        Refund.payment_id == p.id, Refund.status.in_(REFUNDS_IN_FLIGHT)))).scalar_one())
    refundable = p.received_final - p.refunded_units - in_flight
    if refundable <= 0:
        raise RefundNotAllowed("nothing left to refund on this payment")
    amount = refundable if amount_units is None else amount_units
    if amount <= 0:
        raise ValidationFailed("amount must be positive")
    if amount > refundable:
        raise ValidationFailed(f"amount exceeds the refundable {format_units(refundable)} USDT")
    review: list[str] = []
    given = None if to_address is None else _address(to_address)
    payer = await payer_of(session, p)
    if payer is None:
        if given is None:
            raise ValidationFailed("toAddress is required: this payment was a transfer (maybe from an exchange, "
                                   "where a refund to the sender is lost)")
        review.append("paid by transfer: the merchant gave the address")
        to = given
    elif given is not None and given != payer:
        if not by_portal_user:
            raise RefundAddressNotAllowed(
                "an API key can refund only to the payer's address; another address must be requested by a "
                "portal user and is reviewed by an administrator")
        review.append("toAddress is not the payer's address")
        to = given
    else:
        to = payer
    if await refund_needs_approval(session, p.merchant_id, amount):
        review.append("above the refund approval threshold")
    await balances.lock_merchant(session, p.merchant_id)
    available = await balances.available(session, p.chain_id, p.merchant_key, p.token.lower())
    # withdrawals, settlement batches and refunds in flight have promised part of it already
    available -= await balances.reserved(session, p.chain_id, p.merchant_id, p.token.lower())
    if p.status == "late":
        # late money waits at the deposit address until the merchant decides; a refund of it has the
        # sweeper bring it in first (next_approved waits for that), so it covers its own refund, net of
        # the fee the sweep keeps (the contract charges received * fee // amount)
        waiting = max(0, p.deposited_final - p.swept)
        available += waiting - waiting * p.fee_units // p.amount_units
    if amount > available:
        raise InsufficientBalance(
            f"the merchant balance ({format_units(max(0, available))} USDT available) does not cover "
            "this refund; deposits count once swept")
    refund = Refund(payment_id=p.id, merchant_id=p.merchant_id, amount_units=amount,
                    to_address=to_checksum_address(to), reason=(reason or "")[:1000] or None,
                    status="REQUESTED", onchain_ref=p.onchain_id, idempotency_key=idempotency_key,
                    requested_by=requested_by)
    session.add(refund)
    await session.flush()
    await _announce(session, refund, p.mode)
    if review:
        refund.status, refund.review_reason = "PENDING_APPROVAL", "; ".join(review)
    else:
        refund.status = "APPROVED"
    await _announce(session, refund, p.mode)
    if p.status == "late":
        p.late_decision = "REFUND"
    return refund


# --- review by an administrator ---------------------------------------------------------------------------


async def list_for_review(session: AsyncSession, *, status: str | None, offset: int, limit: int
                          ) -> tuple[list[Refund], int]:
    query = select(Refund)
    if status:
        query = query.where(Refund.status == status.upper())
    return await page(session, query, Refund.created_at.desc(), offset=offset, limit=limit)


async def decide(session: AsyncSession, refund_id: uuid.UUID, *, approve: bool, admin_id: uuid.UUID,
                 note: str | None = None, meta: RequestMeta | None = None) -> Refund:
    """An administrator approves (the chain sender sends it) or rejects (its amount is free again) a
    PENDING_APPROVAL refund; audited and announced in the caller's transaction."""
    from node.admin import audit

    found = (await session.execute(select(Refund.payment_id).where(Refund.id == refund_id))).scalar_one_or_none()
    if found is None:
        raise RefundNotFound("refund not found")
    # the payment first, as a refund request does: the two never wait for each other in reverse
    payment = (await session.execute(select(Payment).where(Payment.id == found).with_for_update())).scalar_one()
    refund = (await session.execute(select(Refund).where(Refund.id == refund_id).with_for_update())).scalar_one()
    verb = "approved" if approve else "rejected"
    if refund.status != "PENDING_APPROVAL":
        raise InvalidTransition(f"a {refund.status} refund cannot be {verb}")
    now = datetime.now(UTC)
    old = refund.status
    refund.status = "APPROVED" if approve else "REJECTED"
    refund.decided_by, refund.decided_at, refund.updated_at = admin_id, now, now
    refund.decision_note = (note or "")[:1000] or None
    await audit.record(session, action=f"refund.{verb}", actor_type="ADMIN", actor_id=admin_id,
                       merchant_id=refund.merchant_id, resource_type="refund", resource_id=refund.id,
                       changes={"status": [old, refund.status]},
                       details={"amount": format_units(refund.amount_units), "toAddress": refund.to_address,
                                "paymentId": str(refund.payment_id), "note": refund.decision_note}, meta=meta)
    await _announce(session, refund, payment.mode)
    if not approve and payment.status == "late" and payment.late_decision == "REFUND":
        others = (await session.execute(select(func.count()).where(
            Refund.payment_id == payment.id, Refund.id != refund.id,
            Refund.status.in_((*REFUNDS_IN_FLIGHT, "COMPLETED"))))).scalar_one()
        if not others:
            payment.late_decision = None  # the merchant may accept the money again, or ask another refund
    return refund


# --- sending (called by the chain sender) -----------------------------------------------------------------


async def next_approved(session: AsyncSession, chain_id: int) -> tuple[Refund, Payment] | None:
    """The oldest APPROVED refund on ``chain_id``, locked (others skip it)."""
    row = (await session.execute(
        select(Refund, Payment).join(Payment, Payment.id == Refund.payment_id)
        .where(Refund.status == "APPROVED", Payment.chain_id == chain_id,
               # a refund of late money waits until the sweeper has brought it into the gateway
               ~and_(Payment.status == "late", Payment.deposited_final > Payment.swept))
        .order_by(Refund.created_at).limit(1).with_for_update(of=Refund, skip_locked=True))).first()
    return None if row is None else (row[0], row[1])


def refund_call(refund: Refund, payment: Payment) -> tuple[Any, ...]:
    """The arguments of the gateway's ``refund(paymentId, merchantId, token, to, amount)``."""
    return (bytes(refund.onchain_ref), bytes(payment.merchant_key), to_checksum_address(payment.token),
            to_checksum_address(refund.to_address), int(refund.amount_units))


async def mark_submitted(session: AsyncSession, refund: Refund, payment: Payment) -> None:
    """In the transaction that records the send: from here the refund is in flight until the chain
    decides (its amount stays held)."""
    refund.status, refund.updated_at = "SUBMITTED", datetime.now(UTC)
    await _announce(session, refund, payment.mode)


async def on_send_outcome(session: AsyncSession, refund_id: uuid.UUID, *, status: str, tx_hash: str | None,
                          reason: str | None) -> None:
    """What became of the refund's transaction: MINED keeps it SUBMITTED with its hash (the final
    ``Refunded`` event completes it); REVERTED or DROPPED (its nonce taken by a cancellation, so it
    can never be mined) makes it FAILED, which frees its amount."""
    refund = (await session.execute(select(Refund).where(Refund.id == refund_id).with_for_update())
              ).scalar_one_or_none()
    if refund is None or refund.status != "SUBMITTED":
        return
    if tx_hash:
        refund.tx_hash = tx_hash
    if status in ("REVERTED", "DROPPED"):
        payment = await session.get(Payment, refund.payment_id)
        assert payment is not None
        log.warning("refund failed on chain", refund=str(refund.id), error=(reason or "")[:300])
        refund.status, refund.error, refund.updated_at = "FAILED", (reason or status.lower())[:1000], datetime.now(UTC)
        await _announce(session, refund, payment.mode)


async def refund_completed(session: AsyncSession, settings: Settings, event: Refunded) -> None:
    """A final ``Refunded`` event: complete our refund (matched by tx) and move the payment."""
    payment = (await session.execute(select(Payment).where(Payment.onchain_id == event.payment_id)
                                     .with_for_update())).scalar_one_or_none()
    if payment is None:
        return
    from node.settlement.repository import sends_by_hashes

    send = (await sends_by_hashes(session, [event.transaction_hash])).get(event.transaction_hash)
    refund = None
    if send is not None and send.purpose == "refund":
        refund = (await session.execute(select(Refund).where(Refund.id == send.object_id).with_for_update())
                  ).scalar_one_or_none()
    if refund is None:  # sent before refunds went through chain_sends, or by hand: matched by its content
        refund = (await session.execute(select(Refund).where(
            Refund.payment_id == payment.id, Refund.status.in_(("SUBMITTED", "APPROVED", "FAILED")),
            func.lower(Refund.to_address) == event.to, Refund.amount_units == event.amount)
            .order_by((Refund.tx_hash == event.transaction_hash).desc(), Refund.created_at).limit(1)
        )).scalar_one_or_none()
    if refund is not None and refund.status == "COMPLETED":
        refund = None
    now = datetime.now(UTC)
    if refund is not None:
        refund.status, refund.tx_hash, refund.completed_at, refund.updated_at = (
            "COMPLETED", event.transaction_hash, now, now)
        refund.error = None
        await _announce(session, refund, payment.mode)
    payment.refunded_units = payment.refunded_units + event.amount
    payment.status = "refunded" if payment.refunded_units >= payment.received_final else "partially_refunded"
    payment.updated_at = now
    await states.announce_payment(session, settings, payment, payment.status)


async def list_for_payment(session: AsyncSession, payment_id: uuid.UUID) -> list[Refund]:
    return list((await session.execute(select(Refund).where(Refund.payment_id == payment_id)
                                       .order_by(Refund.created_at))).scalars())


async def get_owned(session: AsyncSession, merchant_id: uuid.UUID, refund_id: uuid.UUID) -> Refund:
    refund = (await session.execute(select(Refund).where(Refund.id == refund_id, Refund.merchant_id == merchant_id)
                                    )).scalar_one_or_none()
    if refund is None:
        raise NotFound("refund not found")
    return refund
