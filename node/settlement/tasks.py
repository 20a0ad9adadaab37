"""The chain sender: the scheduler-role job that turns approved work into transactions.

Each pass (under a PostgreSQL advisory lock, so one process sends for the node at a time):
reconcile every send left SENDING (a crash, an RPC failure, a timeout), then send approved
withdrawals and refunds (operator key), due payout addresses (admin key), requested settlement batches
and approved treasury withdrawals (treasurer key). One transaction at a time per pass: the object's
state change and the intent to send commit together before anything is broadcast.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from chain.artifacts import Artifacts, load_artifacts
from chain.client import RpcClient
from chain.oracle import RateOracle
from node.bus import announce
from node.config import Settings
from node.db import Database
from node.errors import ServiceUnavailable
from node.exchange.treasury_models import TreasuryWithdrawalRequest
from node.payments import refunds
from node.settlement import movements
from node.settlement.chainctx import GatewayContext, gateway_context
from node.settlement.models import ChainSend, PayoutAddress, SettlementBatch, Withdrawal
from node.settlement.sender import (
    RecordingTxSender,
    SendOutcome,
    check_keys,
    make_sender,
    reconcile_send,
    record_send,
    send_once,
)
from node.settlement.service import batch_data, fiat_cents, withdrawal_data

log = structlog.get_logger(__name__)

LOCK_KEY = 0x5E771E  # advisory lock (with the chain id): one chain sender per chain of the node
PURPOSE_KEY = {"withdrawal": "operator", "refund": "operator", "settlement": "treasurer",
               "treasury": "treasurer", "payout_address": "admin"}


async def create_scheduled_settlements(db: Database, settings: Settings) -> int:
    from node.settlement.service import create_due_settlements

    async with db.unit_of_work() as session:
        return await create_due_settlements(session, gateway_context(settings))


class ChainSender:
    """Runs in the scheduler role (``node/scheduler.py``), next to the payments jobs that send from the
    operator key too, so both share one nonce counter per key."""

    def __init__(self, settings: Settings, db: Database, *, rpc: RpcClient | None = None,
                 artifacts: Artifacts | None = None) -> None:
        check_keys(settings)
        self.settings = settings
        self.db = db
        self._rpc = rpc
        self._artifacts = artifacts
        self._senders: dict[str, RecordingTxSender] = {}
        self._ctx: GatewayContext | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def rpc(self) -> RpcClient:
        if self._rpc is None:
            self._rpc = RpcClient(self.settings.rpc_urls)
        return self._rpc

    @property
    def artifacts(self) -> Artifacts:
        if self._artifacts is None:
            self._artifacts = load_artifacts()
        return self._artifacts

    @property
    def ctx(self) -> GatewayContext:
        if self._ctx is None:
            self._ctx = gateway_context(self.settings)
        return self._ctx

    def sender(self, role: str) -> RecordingTxSender:
        if role not in self._senders:
            self._senders[role] = make_sender(self.settings, self.db, self.rpc, role, self.artifacts.error_decoder,
                                              self.ctx.chain_id)
        return self._senders[role]

    def encode(self, fn: str, *args: Any) -> bytes:
        return self.artifacts["OpenPayGateway"].encode_call(fn, *args)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # keep the loop alive; the next pass reconciles
                log.exception("settlement.chain_sender_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.tx_sender_interval_s)

    async def run_once(self) -> int:
        """One pass; returns how many sends it made or resolved (0 when another process holds the lock)."""
        try:
            self.ctx  # noqa: B018  (loads the deployment)
        except ServiceUnavailable:
            log.warning("settlement.no_deployment", message="no contracts deployed: nothing is sent")
            return 0
        async with self.db.engine.connect() as lock_conn:
            lock = {"k": LOCK_KEY, "c": self.ctx.chain_id & 0x7FFFFFFF}
            got = (await lock_conn.execute(text("SELECT pg_try_advisory_lock(:k, :c)"), lock)).scalar()
            if not got:
                return 0
            try:
                done = await self.reconcile()
                for step in (self._next_payout, self._next_withdrawal, self._next_refund, self._next_settlement,
                             self._next_treasury):
                    while (send_id := await step()) is not None:
                        await self._send(send_id)
                        done += 1
                return done
            finally:
                await lock_conn.execute(text("SELECT pg_advisory_unlock(:k, :c)"), lock)
                await lock_conn.commit()

    async def reconcile(self) -> int:
        async with self.db.unit_of_work() as session:
            pending = (await session.execute(select(ChainSend.id, ChainSend.purpose).where(
                ChainSend.status == "SENDING", ChainSend.chain_id == self.ctx.chain_id)
                .order_by(ChainSend.created_at))).all()
        for send_id, purpose in pending:
            outcome = await reconcile_send(self.db, self.sender(PURPOSE_KEY[purpose]), send_id,
                                           on_outcome=movements.on_outcome)
            await self._apply(send_id, outcome)
        return len(pending)

    async def _send(self, send_id: uuid.UUID) -> None:
        async with self.db.unit_of_work() as session:
            purpose = (await session.execute(select(ChainSend.purpose).where(ChainSend.id == send_id))).scalar_one()
        outcome = await send_once(self.db, self.sender(PURPOSE_KEY[purpose]), send_id, movements.on_outcome)
        await self._apply(send_id, outcome)

    async def _apply(self, send_id: uuid.UUID, outcome: SendOutcome) -> None:
        if outcome.status == "PENDING":
            return
        async with self.db.unit_of_work() as session:
            send = await movements.send_for(session, send_id)
            await movements.on_outcome(session, send, outcome)

    async def _record(self, session: AsyncSession, purpose: str, object_id: uuid.UUID, data: bytes) -> uuid.UUID:
        return await record_send(session, purpose=purpose, object_id=object_id, chain_id=self.ctx.chain_id,
                                 sender=self.sender(PURPOSE_KEY[purpose]).address, to=self.ctx.gateway, data=data)

    # ------------------------------------------------------------------ work

    async def _payout_on_chain(self, merchant_key: bytes) -> str:
        data = self.encode("payoutAddress", merchant_key)
        out = await self.rpc.request("eth_call", [{"to": self.ctx.gateway, "data": "0x" + data.hex()}, "latest"])
        return "0x" + str(out)[-40:].lower()

    async def _next_withdrawal(self) -> uuid.UUID | None:
        while True:
            async with self.db.unit_of_work() as session:
                w = (await session.execute(select(Withdrawal).where(
                    Withdrawal.status == "APPROVED", Withdrawal.chain_id == self.ctx.chain_id)
                    .order_by(Withdrawal.created_at).limit(1).with_for_update(skip_locked=True))).scalar_one_or_none()
                if w is None:
                    return None
                key = self.ctx.merchant_key(w.merchant_id)
                now = datetime.now(UTC)
                if await self._payout_on_chain(key) != w.to_address.lower():
                    # the payout address changed since the request: never send it to another address
                    w.status, w.reason, w.updated_at = "FAILED", "the payout address changed; request again", now
                    await session.flush()
                    await announce(session, "withdrawal.failed", withdrawal_data(w), key=str(w.id))
                    continue
                send_id = await self._record(session, "withdrawal", w.id,
                                             self.encode("withdraw", key, w.token, int(w.amount)))
                w.status, w.submitted_at, w.updated_at = "SUBMITTED", now, now
                await session.flush()
                await announce(session, "withdrawal.submitted", withdrawal_data(w), key=str(w.id))
                return send_id

    async def _next_refund(self) -> uuid.UUID | None:
        async with self.db.unit_of_work() as session:
            found = await refunds.next_approved(session, self.ctx.chain_id)
            if found is None:
                return None
            refund, payment = found
            send_id = await self._record(session, "refund", refund.id,
                                         self.encode("refund", *refunds.refund_call(refund, payment)))
            await refunds.mark_submitted(session, refund, payment)
            return send_id

    async def _next_payout(self) -> uuid.UUID | None:
        in_flight = exists().where(Withdrawal.merchant_id == PayoutAddress.merchant_id,
                                   Withdrawal.status == "SUBMITTED")
        async with self.db.unit_of_work() as session:
            p = (await session.execute(select(PayoutAddress).where(
                PayoutAddress.status == "PENDING", PayoutAddress.chain_id == self.ctx.chain_id,
                PayoutAddress.effective_at <= datetime.now(UTC), ~in_flight)
                .order_by(PayoutAddress.effective_at).limit(1).with_for_update(skip_locked=True))).scalar_one_or_none()
            if p is None:
                return None
            send_id = await self._record(session, "payout_address", p.id, self.encode(
                "setPayoutAddress", self.ctx.merchant_key(p.merchant_id), p.address))
            p.status = "SUBMITTED"
            return send_id

    async def _next_settlement(self) -> uuid.UUID | None:
        async with self.db.unit_of_work() as session:
            b = (await session.execute(select(SettlementBatch).where(
                SettlementBatch.status == "REQUESTED", SettlementBatch.chain_id == self.ctx.chain_id)
                .order_by(SettlementBatch.created_at).limit(1).with_for_update(skip_locked=True))).scalar_one_or_none()
            if b is None:
                return None
            oracle = RateOracle(self.rpc, self.ctx.oracle, self.artifacts["OpenPayRateOracle"])
            latest = await oracle.latest_round()
            now = datetime.now(UTC)
            if latest is None:
                b.status, b.reason, b.updated_at = "FAILED", "no USDT/LKR rate on the oracle yet", now
                await session.flush()
                await announce(session, "settlement.failed", batch_data(b), key=str(b.id))
                return await self._after_commit_next_settlement()
            amount = int(b.amount)
            b.rate_fixed, b.fiat_cents = latest.answer, fiat_cents(amount, latest.answer)
            reference = bytes(16) + b.id.bytes
            send_id = await self._record(session, "settlement", b.id, self.encode(
                "settle", self.ctx.merchant_key(b.merchant_id), b.token, amount, reference, latest.answer,
                b.fiat_cents))
            b.status, b.updated_at = "SUBMITTED", now
            await session.flush()
            await announce(session, "settlement.submitted", batch_data(b), key=str(b.id))
            return send_id

    async def _after_commit_next_settlement(self) -> uuid.UUID | None:
        return None  # the failed batch committed; the next pass takes the next one

    async def _next_treasury(self) -> uuid.UUID | None:
        async with self.db.unit_of_work() as session:
            t = (await session.execute(select(TreasuryWithdrawalRequest).where(
                TreasuryWithdrawalRequest.status == "APPROVED", TreasuryWithdrawalRequest.chain_id == self.ctx.chain_id)
                .order_by(TreasuryWithdrawalRequest.created_at).limit(1).with_for_update(skip_locked=True))
            ).scalar_one_or_none()
            if t is None:
                return None
            send_id = await self._record(session, "treasury", t.id, self.encode(
                "withdrawTreasury", t.token, t.to_address, int(t.amount)))
            t.status, t.updated_at = "SUBMITTED", datetime.now(UTC)
            return send_id

    async def close(self) -> None:
        if self._rpc is not None:
            await self._rpc.aclose()
