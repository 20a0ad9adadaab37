"""Sending the node's money-moving transactions exactly once.

Every send is a ``settlement.chain_sends`` row, unique per (purpose, object), written before
anything is broadcast. :class:`RecordingTxSender` stores each signed version (raw bytes and hash,
same nonce) in that row, in its own committed transaction, BEFORE broadcasting it. A process that
dies anywhere therefore leaves either nothing signed (safe to send) or the exact transactions that
may be in flight, which :func:`reconcile` resolves against the chain: mined (ok or reverted),
still pending (re-broadcast the same bytes), or dropped (the nonce is taken over by a zero-value
self-transfer so the dropped version can never be mined later, then FAILED). Stuck transactions
are re-sent with more gas by :class:`~chain.txsender.TxSender` (same nonce: one of them wins).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import rlp
import structlog
from eth_utils.address import to_checksum_address
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chain.artifacts import ErrorDecoder
from chain.client import RpcClient
from chain.errors import ContractRevert
from chain.txsender import Receipt, TxSender, _Fees
from node.config import DEV_DEPLOYER_KEY, DEV_OPERATOR_KEY, DEV_TREASURER_KEY, Settings
from node.db import Database
from node.settlement.models import ChainSend

log = structlog.get_logger(__name__)

KEY_ROLES = ("operator", "treasurer", "admin")


def check_keys(settings: Settings) -> None:
    """The anvil keys are for development only."""
    if not settings.is_production:
        return
    for name, value, dev in (("OPENPAY_OPERATOR_KEY", settings.operator_key, DEV_OPERATOR_KEY),
                             ("OPENPAY_TREASURER_KEY", settings.treasurer_key, DEV_TREASURER_KEY),
                             ("OPENPAY_GATEWAY_ADMIN_KEY", settings.gateway_admin_key, DEV_DEPLOYER_KEY)):
        if value.get_secret_value().lower() == dev:
            raise RuntimeError(f"{name} must be set in production (the default is a public anvil key)")


def key_for(settings: Settings, role: str) -> str:
    return {"operator": settings.operator_key, "treasurer": settings.treasurer_key,
            "admin": settings.gateway_admin_key}[role].get_secret_value()


def nonce_of(raw: str) -> int:
    """The nonce of a signed raw transaction (legacy or EIP-2718 typed)."""
    data = bytes.fromhex(raw.removeprefix("0x"))
    if data[0] >= 0xC0:
        return int.from_bytes(rlp.decode(data)[0], "big")
    return int.from_bytes(rlp.decode(data[1:])[1], "big")


def gas_price_of(raw: str) -> int:
    data = bytes.fromhex(raw.removeprefix("0x"))
    if data[0] >= 0xC0:
        return int.from_bytes(rlp.decode(data)[1], "big")
    return int.from_bytes(rlp.decode(data[1:])[3], "big")  # type 2: maxFeePerGas


class RecordingTxSender(TxSender):
    """A :class:`TxSender` that writes every signed version to its ``chain_sends`` row first.

    Used for one send at a time (the chain sender runs its work sequentially per key)."""

    def __init__(self, rpc: RpcClient, private_key: str, *, db: Database, **kwargs: Any) -> None:
        super().__init__(rpc, private_key, **kwargs)
        self.db = db
        self.current: uuid.UUID | None = None

    async def _broadcast(self, raw: str, tx_hash: str) -> None:
        if self.current is not None:
            async with self.db.unit_of_work() as session:
                await session.execute(
                    update(ChainSend).where(ChainSend.id == self.current)
                    .values(nonce=nonce_of(raw), tx_hashes=func.array_append(ChainSend.tx_hashes, tx_hash),
                            raw_txs=func.array_append(ChainSend.raw_txs, raw), updated_at=func.now())
                )
        await super()._broadcast(raw, tx_hash)

    async def send_recorded(self, send_id: uuid.UUID, to: str, data: bytes) -> Receipt:
        self.current = send_id
        try:
            return await self.send(to_checksum_address(to), data)
        finally:
            self.current = None

    async def cancel_nonce(self, nonce: int, min_gas_price: int) -> str:
        """Takes ``nonce`` with a zero-value transfer to ourselves, priced above ``min_gas_price``."""
        fees = await self.current_fees()
        if fees.legacy:
            fees = _Fees(True, gas_price=max(fees.gas_price, min_gas_price * 2 + 1))
        else:
            fees = _Fees(False, max_fee=max(fees.max_fee, min_gas_price * 2 + 1), tip=max(fees.tip, 1))
        raw, tx_hash = self._sign(to_checksum_address(self.address), b"", 0, 21_000, nonce, fees)
        await TxSender._broadcast(self, raw, tx_hash)
        return tx_hash


@dataclass(frozen=True)
class SendOutcome:
    """What became of a send: ``status`` MINED, REVERTED, DROPPED or PENDING (not known yet)."""

    status: str
    tx_hash: str | None = None
    block_number: int | None = None
    nonce: int | None = None
    reason: str | None = None


async def record_send(session: AsyncSession, *, purpose: str, object_id: uuid.UUID, chain_id: int, sender: str,
                      to: str, data: bytes) -> uuid.UUID:
    """The intent to send, in the caller's transaction (with the object's own state change)."""
    row = await session.execute(
        insert(ChainSend).values(id=uuid.uuid4(), purpose=purpose, object_id=object_id, chain_id=chain_id,
                                 sender=sender.lower(), to_address=to.lower(), data="0x" + data.hex(),
                                 status="SENDING", tx_hashes=[], raw_txs=[])
        .on_conflict_do_nothing(index_elements=["purpose", "object_id"]).returning(ChainSend.id)
    )
    created = row.scalar_one_or_none()
    if created is not None:
        return created
    existing = await session.execute(
        select(ChainSend.id).where(ChainSend.purpose == purpose, ChainSend.object_id == object_id))
    return existing.scalar_one()


def revert_reason(exc: ContractRevert) -> str:
    name = exc.error_name or "unknown error"
    args = ", ".join(str(a) for a in exc.args_decoded)
    return f"reverted: {name}({args})" if args else f"reverted: {name}"


async def send_once(db: Database, sender: RecordingTxSender, send_id: uuid.UUID,
                    on_outcome: OutcomeHandler | None = None) -> SendOutcome:
    """Broadcasts the recorded send (or reconciles it if it already has signed versions);
    ``on_outcome`` applies a known outcome to the send's object in the transaction that stores it."""
    async with db.unit_of_work() as session:
        row = (await session.execute(select(ChainSend).where(ChainSend.id == send_id))).scalar_one()
        to, data, hashes = row.to_address, bytes.fromhex(row.data[2:]), list(row.tx_hashes)
    if hashes:
        return await reconcile_send(db, sender, send_id, on_outcome=on_outcome)
    try:
        receipt = await sender.send_recorded(send_id, to, data)
    except ContractRevert as exc:
        outcome = SendOutcome("REVERTED", exc.tx_hash, reason=revert_reason(exc))
    except Exception as exc:  # RPC down, not mined in time: resolved by reconcile later
        log.warning("settlement.send_pending", send_id=str(send_id), error=str(exc)[:300])
        return SendOutcome("PENDING", reason=str(exc)[:300])
    else:
        outcome = SendOutcome("MINED", receipt.tx_hash, receipt.block_number, receipt.nonce)
    await _store(db, send_id, outcome, on_outcome)
    return outcome


async def reconcile_send(db: Database, sender: RecordingTxSender, send_id: uuid.UUID,
                         *, wait_s: float = 5.0, on_outcome: OutcomeHandler | None = None) -> SendOutcome:
    """Resolves a SENDING row against the chain; never signs a second transaction for the object
    with a different nonce."""
    async with db.unit_of_work() as session:
        row = (await session.execute(select(ChainSend).where(ChainSend.id == send_id))).scalar_one()
        hashes, raws, nonce, status = list(row.tx_hashes), list(row.raw_txs), row.nonce, row.status
    if status != "SENDING":
        return SendOutcome(status, row.mined_tx_hash, row.block_number, nonce, row.error)
    if not hashes:
        return await send_once(db, sender, send_id, on_outcome)
    rpc = sender.rpc
    outcome = await _mined(sender, hashes)
    if outcome is None:
        assert nonce is not None
        taken = int(await rpc.request("eth_getTransactionCount", [sender.address, "latest"]), 16) > nonce
        known = [h for h, tx in zip(hashes, await rpc.batch([("eth_getTransactionByHash", [h]) for h in hashes]),
                                    strict=True) if tx is not None]
        if taken:
            # the nonce was used, but by none of ours (checked above; re-check once: a block may
            # have just landed between the two reads)
            outcome = await _mined(sender, hashes) or SendOutcome("DROPPED", nonce=nonce,
                                                                   reason="dropped: nonce used by another transaction")
        elif known:
            for raw in raws:  # still pending somewhere: make sure the node has it, then wait
                try:
                    await TxSender._broadcast(sender, raw, "")
                except Exception as exc:  # underpriced duplicates and the like
                    log.debug("settlement.rebroadcast", error=str(exc)[:200])
            outcome = await _wait_mined(sender, hashes, wait_s) or SendOutcome("PENDING", nonce=nonce)
        else:
            cancel = await sender.cancel_nonce(nonce, max(gas_price_of(r) for r in raws))
            outcome = await _wait_mined(sender, [*hashes, cancel], wait_s)
            if outcome is None:
                return SendOutcome("PENDING", nonce=nonce)
            if outcome.tx_hash == cancel:
                outcome = SendOutcome("DROPPED", nonce=nonce, reason="dropped from the mempool; nonce cancelled")
    if outcome.status != "PENDING":
        await _store(db, send_id, outcome, on_outcome)
    return outcome


async def _mined(sender: RecordingTxSender, hashes: list[str]) -> SendOutcome | None:
    receipts = await sender.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    for tx_hash, receipt in zip(hashes, receipts, strict=True):
        if receipt is None or receipt.get("blockNumber") is None:
            continue
        block = int(receipt["blockNumber"], 16)
        if int(receipt["status"], 16) == 1:
            return SendOutcome("MINED", tx_hash, block)
        return SendOutcome("REVERTED", tx_hash, block, reason="reverted on chain")
    return None


async def _wait_mined(sender: RecordingTxSender, hashes: list[str], wait_s: float) -> SendOutcome | None:
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        outcome = await _mined(sender, hashes)
        if outcome is not None or asyncio.get_running_loop().time() > deadline:
            return outcome
        await asyncio.sleep(0.2)


OutcomeHandler = Callable[[AsyncSession, ChainSend, SendOutcome], Awaitable[None]]


async def _store(db: Database, send_id: uuid.UUID, outcome: SendOutcome, on_outcome: OutcomeHandler | None) -> None:
    """The outcome and what it does to the send's object commit together: a process that dies after
    this leaves nothing half done (a stored outcome is never looked at again by ``reconcile``)."""
    async with db.unit_of_work() as session:
        stored = await session.execute(
            update(ChainSend).where(ChainSend.id == send_id, ChainSend.status == "SENDING")
            .values(status=outcome.status, mined_tx_hash=outcome.tx_hash if outcome.status == "MINED" else None,
                    block_number=outcome.block_number, error=outcome.reason, updated_at=func.now())
            .returning(ChainSend.id)
        )
        if stored.scalar_one_or_none() is not None and on_outcome is not None:
            send = (await session.execute(select(ChainSend).where(ChainSend.id == send_id))).scalar_one()
            await on_outcome(session, send, outcome)


def make_sender(settings: Settings, db: Database, rpc: RpcClient, role: str, errors: ErrorDecoder,
                chain_id: int) -> RecordingTxSender:
    return RecordingTxSender(
        rpc, key_for(settings, role), db=db, chain_id=chain_id, errors=errors,
        replace_after=settings.tx_replace_after_s, receipt_timeout=settings.tx_receipt_timeout_s,
        poll_interval=0.2,
    )
