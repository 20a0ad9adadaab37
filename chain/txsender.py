"""Send transactions from one key: nonces, gas, fees, stuck-transaction replacement, receipts,
revert decoding.

- One :class:`NonceManager` per (chain, address) and event loop: nonces are handed out and
  broadcast under a lock, so concurrent senders on one key never reuse or skip a nonce.
- Gas is ``eth_estimateGas`` times a margin; a revert at estimation raises
  :class:`~chain.errors.ContractRevert` with the decoded custom error and spends no nonce.
- Fees are legacy (``gasPrice``) on BSC (56, 97) and EIP-1559 elsewhere, unless told.
- A transaction not mined after ``replace_after`` seconds is re-sent with the same nonce and
  fees raised by ``bump`` (default 12.5%, above geth's 10% replacement rule), up to
  ``max_replacements`` times; whichever version is mined is the result.
- A mined revert is replayed with ``eth_call`` to recover its revert data.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain.artifacts import ErrorDecoder
from chain.client import RpcClient
from chain.errors import ContractRevert, NonceError, RpcError, TransactionNotMined
from chain.events import ChainEvent, decode_logs

LEGACY_CHAINS = frozenset({56, 97})
DEFAULT_BUMP = 1.125

BroadcastHook = Callable[[int, str, int], None]
"""``hook(nonce, tx_hash, attempt)`` after each broadcast (attempt 0 is the first, then replacements)."""


def _hex(value: int) -> str:
    return hex(value)


def _revert_data(error: RpcError) -> bytes | None:
    """Revert bytes from a JSON-RPC error, in the shapes geth/anvil/erigon use."""
    data: Any = error.data
    if isinstance(data, dict):
        data = data.get("data") or data.get("result")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    if error.code == 3 or "revert" in str(error).lower():
        return b""
    return None


@dataclass(frozen=True)
class Receipt:
    """A mined transaction (possibly a replacement of the first one sent)."""

    tx_hash: str
    nonce: int
    status: int
    block_number: int
    block_hash: str
    gas_used: int
    effective_gas_price: int
    contract_address: str | None
    logs: list[dict[str, Any]] = field(repr=False)
    replaced: tuple[str, ...] = ()

    @property
    def events(self) -> list[ChainEvent]:
        return decode_logs(self.logs)


class NonceManager:
    """Hands out consecutive nonces for one address; learns the start from the node."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.lock = asyncio.Lock()
        self._next: int | None = None

    async def next_nonce(self, rpc: RpcClient) -> int:
        """The nonce to use now. Call with :attr:`lock` held, and :meth:`commit` after broadcasting."""
        if self._next is None:
            self._next = int(await rpc.request("eth_getTransactionCount", [self.address, "pending"]), 16)
        return self._next

    def commit(self, nonce: int) -> None:
        self._next = nonce + 1

    def reset(self) -> None:
        """Forget the counter; the next :meth:`next_nonce` asks the node again."""
        self._next = None


_managers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, str], NonceManager]] = (
    weakref.WeakKeyDictionary()
)


def nonce_manager(chain_id: int, address: str) -> NonceManager:
    """The shared :class:`NonceManager` of ``address`` on ``chain_id`` for the running event loop."""
    per_loop = _managers.setdefault(asyncio.get_running_loop(), {})
    key = (chain_id, address.lower())
    if key not in per_loop:
        per_loop[key] = NonceManager(address)
    return per_loop[key]


@dataclass
class _Fees:
    legacy: bool
    gas_price: int = 0
    max_fee: int = 0
    tip: int = 0

    def fields(self) -> dict[str, int]:
        if self.legacy:
            return {"gasPrice": self.gas_price}
        return {"maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.tip}

    def bumped(self, factor: float, floor: _Fees) -> _Fees:
        def up(old: int, new: int) -> int:
            return max(math.ceil(old * factor), old + 1, new)

        if self.legacy:
            return _Fees(True, gas_price=up(self.gas_price, floor.gas_price))
        tip = up(self.tip, floor.tip)
        return _Fees(False, max_fee=max(up(self.max_fee, floor.max_fee), tip), tip=tip)


class TxSender:
    """Signs and sends transactions from one private key and waits for them to be mined."""

    def __init__(
        self,
        rpc: RpcClient,
        private_key: str | bytes,
        *,
        chain_id: int,
        legacy: bool | None = None,
        errors: ErrorDecoder | None = None,
        gas_margin: float = 1.2,
        min_priority_fee: int = 0,
        gas_price_multiplier: float = 1.0,
        replace_after: float = 30.0,
        bump: float = DEFAULT_BUMP,
        max_replacements: int = 5,
        receipt_timeout: float = 600.0,
        poll_interval: float = 0.5,
        nonces: NonceManager | None = None,
        on_broadcast: BroadcastHook | None = None,
    ) -> None:
        if bump < 1.1:
            raise ValueError("bump must be at least 1.1: nodes reject smaller replacements")
        self.rpc = rpc
        self.account: LocalAccount = Account.from_key(private_key)
        self.chain_id = chain_id
        self.legacy = chain_id in LEGACY_CHAINS if legacy is None else legacy
        self.errors = errors or ErrorDecoder()
        self.gas_margin = gas_margin
        self.min_priority_fee = min_priority_fee
        self.gas_price_multiplier = gas_price_multiplier
        self.replace_after = replace_after
        self.bump = bump
        self.max_replacements = max_replacements
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self._nonces = nonces
        self.on_broadcast = on_broadcast

    @property
    def address(self) -> str:
        return str(self.account.address)

    def _manager(self) -> NonceManager:
        if self._nonces is None:
            self._nonces = nonce_manager(self.chain_id, self.address)
        return self._nonces

    # ------------------------------------------------------------------ reads

    def _revert(self, error: RpcError, tx_hash: str | None = None) -> ContractRevert | None:
        data = _revert_data(error)
        if data is None:
            return None
        name, args = self.errors.decode(data)
        if name is None and not data:
            message = str(error)
            if "reverted: " in message:
                return ContractRevert("Error", (message.split("reverted: ", 1)[1],), data, tx_hash=tx_hash)
        return ContractRevert(name, args, data, tx_hash=tx_hash)

    async def call(self, to: str, data: bytes, *, value: int = 0, block: str | int = "latest",
                   sender: str | None = None) -> bytes:
        """``eth_call``; a revert raises :class:`ContractRevert` with the decoded error."""
        tx = {"from": sender or self.address, "to": to, "data": "0x" + data.hex(), "value": _hex(value)}
        block_tag = block if isinstance(block, str) else _hex(block)
        try:
            result = await self.rpc.request("eth_call", [tx, block_tag])
        except RpcError as exc:
            revert = self._revert(exc)
            if revert is not None:
                raise revert from exc
            raise
        return bytes.fromhex(str(result)[2:])

    async def estimate_gas(self, to: str | None, data: bytes, value: int = 0) -> int:
        """``eth_estimateGas`` times the margin; reverts raise :class:`ContractRevert`."""
        tx: dict[str, Any] = {"from": self.address, "data": "0x" + data.hex(), "value": _hex(value)}
        if to is not None:
            tx["to"] = to
        try:
            estimate = int(await self.rpc.request("eth_estimateGas", [tx]), 16)
        except RpcError as exc:
            revert = self._revert(exc)
            if revert is not None:
                raise revert from exc
            raise
        return math.ceil(estimate * self.gas_margin)

    async def current_fees(self) -> _Fees:
        if self.legacy:
            price = int(await self.rpc.request("eth_gasPrice"), 16)
            return _Fees(True, gas_price=math.ceil(price * self.gas_price_multiplier))
        block, tip_hex = await self.rpc.batch([
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_maxPriorityFeePerGas", []),
        ])
        base = int(block.get("baseFeePerGas") or "0x0", 16)
        tip = max(int(tip_hex, 16), self.min_priority_fee)
        return _Fees(False, max_fee=2 * base + tip, tip=tip)

    # ------------------------------------------------------------------ writes

    def _sign(self, to: str | None, data: bytes, value: int, gas: int, nonce: int, fees: _Fees) -> tuple[str, str]:
        tx: dict[str, Any] = {
            "chainId": self.chain_id, "nonce": nonce, "gas": gas, "value": value, "data": data, **fees.fields(),
        }
        if to is not None:
            tx["to"] = to
        if not self.legacy:
            tx["type"] = 2
        signed = self.account.sign_transaction(tx)
        return "0x" + signed.raw_transaction.hex(), "0x" + signed.hash.hex()

    async def _broadcast(self, raw: str, tx_hash: str) -> None:
        try:
            await self.rpc.request("eth_sendRawTransaction", [raw])
        except RpcError as exc:
            if "already known" in str(exc).lower():
                return
            raise

    async def send(self, to: str | None, data: bytes, *, value: int = 0, gas: int | None = None) -> Receipt:
        """Sends a transaction and returns its receipt once mined.

        Raises :class:`ContractRevert` when it reverts (at estimation, before any nonce is
        spent, or once mined), :class:`TransactionNotMined` after ``receipt_timeout``.
        """
        if gas is None:
            gas = await self.estimate_gas(to, data, value)
        fees = await self.current_fees()
        manager = self._manager()
        async with manager.lock:
            for attempt in range(2):
                nonce = await manager.next_nonce(self.rpc)
                raw, tx_hash = self._sign(to, data, value, gas, nonce, fees)
                try:
                    await self._broadcast(raw, tx_hash)
                except RpcError as exc:
                    if attempt == 0 and "nonce" in str(exc).lower():
                        manager.reset()  # someone else used this key: learn the nonce again
                        continue
                    if "nonce" in str(exc).lower():
                        raise NonceError(f"{self.address}: nonce {nonce} rejected: {exc}") from exc
                    raise
                manager.commit(nonce)
                break
        if self.on_broadcast is not None:
            self.on_broadcast(nonce, tx_hash, 0)
        return await self._wait(to, data, value, gas, nonce, fees, [tx_hash])

    async def _wait(self, to: str | None, data: bytes, value: int, gas: int, nonce: int, fees: _Fees,
                    hashes: list[str]) -> Receipt:
        started = last_sent = time.monotonic()
        replacements = 0
        while True:
            receipts = await self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
            for tx_hash, receipt in zip(hashes, receipts, strict=True):
                if receipt is not None and receipt.get("blockNumber") is not None:
                    return await self._finish(receipt, to, data, value, nonce, hashes, tx_hash)
            now = time.monotonic()
            if now - started > self.receipt_timeout:
                raise TransactionNotMined(f"nonce {nonce} of {self.address} not mined: {', '.join(hashes)}")
            if now - last_sent >= self.replace_after and replacements < self.max_replacements:
                fees = fees.bumped(self.bump, await self.current_fees())
                raw, tx_hash = self._sign(to, data, value, gas, nonce, fees)
                try:
                    await self._broadcast(raw, tx_hash)
                except RpcError as exc:
                    text = str(exc).lower()
                    if "nonce" not in text and "underpriced" not in text:
                        raise
                    # nonce too low: one of ours was just mined; underpriced: bump again next round
                else:
                    hashes.append(tx_hash)
                    replacements += 1
                    if self.on_broadcast is not None:
                        self.on_broadcast(nonce, tx_hash, replacements)
                last_sent = now
            await asyncio.sleep(self.poll_interval)

    async def _finish(self, receipt: dict[str, Any], to: str | None, data: bytes, value: int, nonce: int,
                      hashes: Sequence[str], tx_hash: str) -> Receipt:
        result = Receipt(
            tx_hash=tx_hash,
            nonce=nonce,
            status=int(receipt["status"], 16),
            block_number=int(receipt["blockNumber"], 16),
            block_hash=receipt["blockHash"],
            gas_used=int(receipt["gasUsed"], 16),
            effective_gas_price=int(receipt.get("effectiveGasPrice") or "0x0", 16),
            contract_address=receipt.get("contractAddress"),
            logs=list(receipt.get("logs", [])),
            replaced=tuple(h for h in hashes if h != tx_hash),
        )
        if result.status == 1:
            return result
        revert = ContractRevert(None, (), b"", tx_hash=tx_hash)
        if to is not None:
            try:
                await self.call(to, data, value=value, block=result.block_number)
            except ContractRevert as exc:
                revert = ContractRevert(exc.error_name, exc.args_decoded, exc.data, tx_hash=tx_hash)
        raise revert
