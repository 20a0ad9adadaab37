"""Scheduler work of payments: expiry, sweeps of final deposits in batches, refunds to send,
payment-link expiry, and the test chain's simulated customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from eth_utils.address import to_checksum_address
from sqlalchemy import or_, select

from chain.errors import ChainError
from node.config import Settings
from node.db import Database
from node.payments import links, onchain, refunds, states
from node.payments.models import Payment
from node.payments.service import intent_of

log = structlog.get_logger(__name__)


async def expire_payments(db: Database, settings: Settings) -> int:
    total = 0
    while True:
        async with db.unit_of_work() as session:
            count = await states.expire_due(session, settings)
        total += count
        if count < 500:
            return total


async def expire_links(db: Database) -> int:
    async with db.unit_of_work() as session:
        return await links.expire_due(session)


async def sweep_deposits(db: Database, settings: Settings, operator: onchain.Operator) -> int:
    """``sweepBatch`` over final deposits not yet swept, ``settings.sweep_batch_size`` per tx.
    Swept amounts are recorded from the indexed ``DepositSwept`` events, not from here."""
    dep = onchain.deployment(settings)
    art = onchain.artifacts()["OpenPayGateway"]
    stale = datetime.now(UTC) - timedelta(minutes=5)
    swept = 0
    while True:
        async with db.unit_of_work() as session:
            batch = list((await session.execute(
                select(Payment).where(Payment.chain_id == dep.chain_id, Payment.received_final > Payment.swept,
                                      or_(Payment.sweep_at.is_(None), Payment.sweep_at < stale))
                .order_by(Payment.created_at).limit(settings.sweep_batch_size)
                .with_for_update(skip_locked=True))).scalars())
            if not batch:
                return swept
            data = art.encode_call("sweepBatch", [intent_of(p).as_tuple() for p in batch])
            try:
                receipt = await operator.sender.send(dep.gateway, data)
            except ChainError as exc:
                log.warning("sweep failed", count=len(batch), error=str(exc)[:300])
                return swept
            now = datetime.now(UTC)
            for p in batch:
                p.sweep_tx, p.sweep_at = receipt.tx_hash, now
            swept += len(batch)


async def simulate_customer(settings: Settings, payment: Payment) -> str:
    """Pays ``payment`` for real on the test chain from the funded test wallet: mints MockUSDT to
    it if the token is our mock, then transfers the amount to the deposit address."""
    dep = onchain.deployment(settings)
    token = onchain.artifacts()["MockUSDT"]
    op = onchain.operator(settings, key=settings.test_payer_key.get_secret_value())
    try:
        wallet = op.sender.address
        if dep.token_is_mock:
            await op.sender.send(dep.token, token.encode_call("faucet", wallet, int(payment.amount_units)))
        receipt = await op.sender.send(dep.token, token.encode_call(
            "transfer", to_checksum_address(payment.deposit_address), int(payment.amount_units)))
        return receipt.tx_hash
    finally:
        await op.aclose()


async def submit_refunds(db: Database, settings: Settings, operator: onchain.Operator) -> int:
    return await refunds.submit_approved(db, settings, operator)
