"""Scheduler work of payments: expiry, sweeps of final deposits in batches, payment-link expiry, and
the test chain's simulated customer (refunds are sent by the settlement chain sender)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog
from eth_utils.address import to_checksum_address
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chain.client import RpcClient
from chain.errors import ChainError, ContractRevert
from node.config import Settings
from node.db import Database
from node.metrics import SWEEP_BATCHES, SWEEP_DEPOSITS, SWEEP_GAS_PRICE, SWEEP_SKIPPED, SWEEP_SKIPPED_USDT
from node.money import format_units, from_base_units, to_base_units
from node.payments import links, onchain, states
from node.payments.models import Payment, Receipt, Refund
from node.payments.service import intent_of
from node.settlement.sweeps import SkippedSweep, SweepCandidate, plan_sweep_batches

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


SWEEP_LEASE = timedelta(minutes=5)  # a claimed deposit is not swept again before this (the tx may still land)


@dataclass
class SweepRun:
    """What one sweep run did: ``swept`` deposits in ``batches`` mined ``sweepBatch`` transactions,
    those it left (``skipped``, with reasons) and the error that stopped it, if any."""

    swept: int = 0
    batches: int = 0
    gas_price: int | None = None
    skipped: list[SkippedSweep] = field(default_factory=list)
    error: str | None = None

    def skipped_totals(self) -> dict[str, tuple[int, int]]:
        """reason -> (deposits, base units waiting at them)."""
        totals: dict[str, tuple[int, int]] = {}
        for s in self.skipped:
            count, total = totals.get(s.reason, (0, 0))
            totals[s.reason] = (count + 1, total + s.candidate.received)
        return totals


async def sweep_deposits(db: Database, settings: Settings, operator: onchain.Operator) -> int:
    """The scheduler's job: :func:`run_sweeps`, answering how many deposits were swept."""
    return (await run_sweeps(db, settings, operator)).swept


async def run_sweeps(db: Database, settings: Settings, operator: onchain.Operator) -> SweepRun:
    """``sweepBatch`` over final deposits not yet swept (``deposited_final > swept``: plain transfers
    to the deposit address; money paid with ``pay`` is already in the gateway), planned by
    :func:`node.settlement.sweeps.plan_sweep_batches` at the chain's current gas price: nothing while
    gas costs more than ``sweep_max_gas_price_wei``, deposits under ``sweep_dust_usdt`` left (logged,
    swept once more arrives), the rest in batches of ``sweep_batch_size``.

    Each batch is claimed (``sweep_at``) and committed before its transaction is sent, so no row lock
    is held while waiting for the chain (the indexer locks these rows to recompute them); a claim
    keeps the deposits out of other runs for ``SWEEP_LEASE``. Swept amounts are recorded from the
    indexed ``DepositSwept`` events, not from here."""
    dep = onchain.deployment(settings)
    run = SweepRun()
    async with db.unit_of_work() as session:
        candidates = await _sweep_candidates(session, dep.chain_id, datetime.now(UTC) - SWEEP_LEASE)
    if not candidates:
        _report(run)
        return run
    try:
        run.gas_price = int(await operator.rpc.request("eth_gasPrice"), 16)
    except (ChainError, TypeError, ValueError) as exc:
        run.error = f"no gas price: {exc}"[:300]
        log.warning("sweep: no gas price from the chain", error=run.error, waiting=len(candidates))
        return run
    batches, run.skipped = plan_sweep_batches(candidates, run.gas_price, settings)
    _report(run)
    art = onchain.artifacts()["OpenPayGateway"]
    for batch in batches:
        claimed_at = datetime.now(UTC)
        async with db.unit_of_work() as session:
            claimed = await _claim(session, [c.key for c in batch], claimed_at - SWEEP_LEASE, claimed_at)
            intents = [intent_of(p).as_tuple() for p in claimed]
            ids = [p.id for p in claimed]
        if not ids:
            continue  # another run took them meanwhile
        try:
            receipt = await operator.sender.send(dep.gateway, art.encode_call("sweepBatch", intents))
        except ChainError as exc:
            run.error = str(exc)[:300]
            sent = not isinstance(exc, ContractRevert) or exc.tx_hash is not None
            if not sent:
                # refused at estimation, nothing went out: the next run may try again at once
                async with db.unit_of_work() as session:
                    await session.execute(update(Payment).where(Payment.id.in_(ids), Payment.sweep_at == claimed_at)
                                          .values(sweep_at=None))
            # else it may still be mined (or was, and reverted): the claim stands until the lease ends
            SWEEP_BATCHES.labels("failed").inc()
            log.warning("sweep failed", count=len(ids), sent=sent, error=run.error)
            break
        async with db.unit_of_work() as session:
            await session.execute(update(Payment).where(Payment.id.in_(ids)).values(sweep_tx=receipt.tx_hash))
        run.swept += len(ids)
        run.batches += 1
        SWEEP_BATCHES.labels("mined").inc()
        SWEEP_DEPOSITS.inc(len(ids))
    if run.swept:
        log.info("swept deposits", count=run.swept, batches=run.batches, gas_price=run.gas_price)
    return run


# late money waits at its deposit address until the merchant decides: swept once accepted (the payment
# is then paid/underpaid/overpaid) or once its refund is approved (the refund is sent from the swept
# money), never before, or it would count as the merchant's withdrawable balance first. A refund still
# waiting for an administrator is no decision yet: a rejection gives the money back to the merchant
# to decide on
DECIDED = or_(Payment.status != "late", Payment.late_decision == "ACCEPTED",
              and_(Payment.late_decision == "REFUND", exists().where(
                  Refund.payment_id == Payment.id, Refund.status.in_(("APPROVED", "SUBMITTED", "COMPLETED")))))


async def _sweep_candidates(session: AsyncSession, chain_id: int, stale: datetime) -> list[SweepCandidate]:
    """What waits at each deposit address of the chain, unclaimed (two columns over the partial
    index ``ix_payments_unswept``); the planner decides what to do with it."""
    waiting = Payment.deposited_final - Payment.swept
    # an approved refund of late money is sent once its money is swept in: swept even when it is dust
    refund_waits = and_(Payment.status == "late", exists().where(
        Refund.payment_id == Payment.id, Refund.status == "APPROVED"))
    rows = await session.execute(
        select(Payment.id, waiting, refund_waits).where(
            Payment.chain_id == chain_id, Payment.deposited_final > Payment.swept,
            or_(Payment.sweep_at.is_(None), Payment.sweep_at < stale), DECIDED)
        .order_by(Payment.created_at))
    return [SweepCandidate(pid, int(amount), needed=bool(needed)) for pid, amount, needed in rows]


async def _claim(session: AsyncSession, ids: list[Hashable], stale: datetime, now: datetime) -> list[Payment]:
    """The batch's payments still waiting and unclaimed, now claimed; rows another run holds or
    took meanwhile are left out."""
    claimed = list((await session.execute(
        select(Payment).where(Payment.id.in_(ids), Payment.deposited_final > Payment.swept,
                              or_(Payment.sweep_at.is_(None), Payment.sweep_at < stale), DECIDED)
        .order_by(Payment.created_at).with_for_update(skip_locked=True))).scalars())
    for p in claimed:
        p.sweep_at = now
    return claimed


def _report(run: SweepRun) -> None:
    """Logs and exports what this run left: per reason, how many deposits and how much waits there."""
    if run.gas_price is not None:
        SWEEP_GAS_PRICE.set(run.gas_price)
    totals = run.skipped_totals()
    for reason in ("dust", "gas_price_too_high"):
        count, total = totals.get(reason, (0, 0))
        SWEEP_SKIPPED.labels(reason).set(count)
        SWEEP_SKIPPED_USDT.labels(reason).set(float(from_base_units(total)))
        if count:
            log.info("sweep: deposits left", reason=reason, count=count, total_usdt=format_units(total),
                     gas_price=run.gas_price)


# the spec's test amounts (sdk-wire-protocol.md, provider TEST): 0.01 USDT ends EXPIRED, 0.02 FAILED
SIMULATE_EXPIRES = to_base_units(Decimal("0.01"))
SIMULATE_FAILS = to_base_units(Decimal("0.02"))
# anvil's `finalized` block trails its head by two epochs of 32 slots
ANVIL_FINALIZED_LAG = 64


async def simulate_customer(db: Database, settings: Settings, payment: Payment) -> str | None:
    """The test chain's customer of ``payment`` (``settings``: the payment's chain), for real: a
    transfer from the funded test wallet (MockUSDT minted to it first) to the deposit address, then
    the confirmation depth mined on anvil so the indexer takes it as final. The spec's amounts:
    0.01 USDT sends nothing and the payment expires now; 0.02 USDT sends half, waits (at most
    ``callback_wait_s``) for the indexer to record it final (underpaid), and the payment is closed
    now (failed). Expiry is the ordinary one (:func:`states.expire_due`), announced like any other.
    Answers the transaction's hash, None when nothing was sent."""
    units = int(payment.amount_units)
    if units == SIMULATE_EXPIRES:
        await _close_now(db, settings, payment.id)
        return None
    tx_hash = await _transfer_to_deposit(settings, payment, units // 2 if units == SIMULATE_FAILS else units)
    if units == SIMULATE_FAILS:
        await wait_for_receipt(db, payment.id, tx_hash, settings.callback_wait_s)
        await _close_now(db, settings, payment.id)
    return tx_hash


async def _transfer_to_deposit(settings: Settings, payment: Payment, units: int) -> str:
    dep = onchain.deployment(settings)
    token = onchain.artifacts()["MockUSDT"]
    op = onchain.operator(settings, key=settings.test_payer_key.get_secret_value())
    try:
        wallet = op.sender.address
        if dep.token_is_mock:
            await op.sender.send(dep.token, token.encode_call("faucet", wallet, units))
        receipt = await op.sender.send(dep.token, token.encode_call(
            "transfer", to_checksum_address(payment.deposit_address), units))
        await _mine_confirmations(op.rpc, settings)
        return receipt.tx_hash
    finally:
        await op.aclose()


async def _mine_confirmations(rpc: RpcClient, settings: Settings) -> None:
    """On anvil, the blocks the indexer waits for before a payment is final are mined at once;
    another test chain (BSC testnet) confirms in its own time."""
    depth = settings.indexer_confirmations if settings.indexer_finality == "depth" else ANVIL_FINALIZED_LAG
    if depth <= 0:
        return
    try:
        await rpc.request("anvil_mine", [hex(depth)])
    except ChainError as exc:
        log.info("simulate: the test chain mines no blocks on request; confirmations come in their own time",
                 error=str(exc)[:200])


async def _close_now(db: Database, settings: Settings, payment_id: uuid.UUID) -> None:
    """The simulated customer stops here: the deadline becomes now and the payment is closed by
    the ordinary expiry, with no grace (nothing more is on its way): expired, or failed when
    underpaid."""
    async with db.unit_of_work() as session:
        now = datetime.now(UTC)
        await session.execute(update(Payment).where(Payment.id == payment_id, Payment.expire_at > now)
                              .values(expire_at=now))
        await states.expire_due(session, settings, payment_ids=[payment_id], grace_s=0)


async def wait_for_receipt(db: Database, payment_id: uuid.UUID, tx_hash: str, timeout_s: float) -> bool:
    """Whether the indexer recorded ``tx_hash``'s money to the payment as final within ``timeout_s``."""
    async def recorded(session: AsyncSession) -> bool:
        return await session.scalar(select(Receipt.id).where(
            Receipt.payment_id == payment_id, func.lower(Receipt.tx_hash) == tx_hash.lower(), Receipt.final)
            .limit(1)) is not None
    return await _until(db, recorded, time.monotonic() + timeout_s)


async def wait_indexed(db: Database, settings: Settings, timeout_s: float) -> bool:
    """Whether the indexer of ``settings``' chain committed the chain's current head within
    ``timeout_s`` (what the callback reconciles from: the chain as it is now, not the indexer's
    lag). Read in short transactions: no connection is held while waiting."""
    deadline = time.monotonic() + timeout_s
    try:
        async with RpcClient(settings.rpc_urls, timeout=timeout_s, retries=1) as rpc:
            head = int(await asyncio.wait_for(rpc.request("eth_blockNumber"), timeout_s), 16)
    except (ChainError, TimeoutError, TypeError, ValueError) as exc:
        log.warning("callback: no chain head; answering from the indexed state", error=str(exc)[:200])
        return False

    async def caught_up(session: AsyncSession) -> bool:
        return (await states.indexed_heads(session, [settings.chain_id], ttl=0)).get(settings.chain_id, -1) >= head
    return await _until(db, caught_up, deadline)


async def _until(db: Database, done: Callable[[AsyncSession], Awaitable[bool]], deadline: float) -> bool:
    """Whether ``done`` holds (asked every 0.1 s, each time in a short transaction of its own: no
    connection is held while waiting) by ``deadline`` (``time.monotonic``)."""
    while True:
        async with db.unit_of_work() as session:
            if await done(session):
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)
