"""Fetches logs over block ranges: adaptive range, retries with backoff and jitter,
failover across RPC URLs (``chain.client.RpcClient``). It only fetches."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from chain.client import RpcClient
from chain.errors import RpcError
from chain.events import Transfer
from indexer.metrics import RPC_ERRORS

log = structlog.get_logger(__name__)

# what nodes answer when a range holds too much (geth, erigon, BSC, alchemy, infura, quicknode, anvil)
_TOO_MUCH = ("too many", "limit", "exceed", "range", "response size", "query timeout", "timeout",
             "max results", "10000", "block range", "returned more than")

DepositWatch = Callable[[], Awaitable[Sequence[str]]]
"""Returns the deposit addresses whose incoming token transfers we follow."""

_ADDRESS_CHUNK = 500


@dataclass
class FetchedRange:
    start: int
    end: int
    logs: list[dict[str, Any]]


class LogFetcher:
    def __init__(
        self, rpc: RpcClient, addresses: Sequence[str], *, token: str | None = None,
        deposit_watch: DepositWatch | None = None, initial_range: int = 2_000, max_range: int = 50_000,
        target_logs: int = 20_000, max_attempts: int = 8,
    ) -> None:
        self.rpc = rpc
        self.addresses = [a.lower() for a in addresses]
        self.token = token.lower() if token else None
        self.deposit_watch = deposit_watch
        self.span = initial_range
        self.max_range = max_range
        self.target_logs = target_logs
        self.max_attempts = max_attempts

    async def fetch(self, start: int, limit: int) -> FetchedRange:
        """Logs of blocks ``start..end`` with ``end <= limit``, as many blocks as the node allows."""
        attempt = 0
        while True:
            end = min(limit, start + self.span - 1)
            try:
                logs = await self._get_logs(start, end)
            except RpcError as exc:
                RPC_ERRORS.labels(type(exc).__name__).inc()
                attempt += 1
                if _is_too_much(exc) and end > start:
                    self.span = max(1, (end - start + 1) // 2)
                    log.info("range too large, shrinking", start=start, span=self.span, error=str(exc)[:120])
                    continue
                if attempt >= self.max_attempts:
                    raise
                delay = min(10.0, 0.2 * 2 ** attempt) * (0.5 + random.random())  # noqa: S311 - jitter
                log.warning("getLogs failed, retrying", start=start, end=end, attempt=attempt,
                            delay=round(delay, 2), error=str(exc)[:200])
                await asyncio.sleep(delay)
                continue
            blocks = end - start + 1
            if len(logs) > self.target_logs:
                # aim the next range at the target: bounded memory per transaction
                self.span = max(1, blocks * self.target_logs // len(logs))
            elif len(logs) < self.target_logs // 4 and blocks >= self.span:
                self.span = min(self.max_range, self.span * 2)
            return FetchedRange(start, end, logs)

    async def calls(self, start: int, end: int) -> list[tuple[str, list[Any]]]:
        """The ``eth_getLogs`` calls that cover blocks ``start..end`` (ours, and deposit transfers)."""
        window = {"fromBlock": hex(start), "toBlock": hex(end)}
        calls: list[tuple[str, list[Any]]] = [("eth_getLogs", [{**window, "address": self.addresses}])]
        if self.deposit_watch is not None and self.token is not None:
            watched = list(await self.deposit_watch())
            for i in range(0, len(watched), _ADDRESS_CHUNK):
                padded = ["0x" + a.lower()[2:].rjust(64, "0") for a in watched[i:i + _ADDRESS_CHUNK]]
                calls.append(("eth_getLogs", [{**window, "address": self.token,
                                               "topics": [Transfer.TOPIC0, None, padded]}]))
        return calls

    @staticmethod
    def collect(results: Sequence[Any]) -> list[dict[str, Any]]:
        """The logs of those calls' results, in chain order; raises on a malformed answer."""
        logs: list[dict[str, Any]] = []
        for result in results:
            if not isinstance(result, list):
                raise RpcError(f"eth_getLogs returned {type(result).__name__}, not a list")
            logs.extend(result)
        if len(results) > 1:
            logs.sort(key=lambda lg: (int(lg["blockNumber"], 16), int(lg["logIndex"], 16)))
        for lg in logs:
            if lg.get("removed"):
                raise RpcError("eth_getLogs returned a removed log: the range is being reorganised")
        return logs

    async def _get_logs(self, start: int, end: int) -> list[dict[str, Any]]:
        calls = await self.calls(start, end)
        results = [await self.rpc.request(*calls[0])] if len(calls) == 1 else await self.rpc.batch(calls)
        return self.collect(results)


def _is_too_much(exc: RpcError) -> bool:
    text = str(exc).lower()
    if exc.code in (-32005, -32602, -32000) and any(word in text for word in _TOO_MUCH):
        return True
    return any(word in text for word in ("too many", "response size", "returned more than", "block range"))
