"""New-head notifications over WebSocket (``eth_subscribe`` ``newHeads``) where the node
offers them, so the follower reacts to a block at once instead of at its next poll.
Polling stays the fallback: a missed notification only costs one poll interval."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
import websockets

log = structlog.get_logger(__name__)


def ws_url_for(rpc_url: str) -> str:
    """The WebSocket URL most nodes (anvil, geth, erigon) serve beside their HTTP one."""
    if rpc_url.startswith("https://"):
        return "wss://" + rpc_url.removeprefix("https://")
    return "ws://" + rpc_url.removeprefix("http://")


class HeadWatcher:
    def __init__(self, url: str) -> None:
        self.url = url
        self.new_head = asyncio.Event()
        self._header: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    def take_header(self) -> dict[str, Any] | None:
        """The newest header announced since the last call (None if none): the follower uses it
        instead of asking the node for the latest block, one round trip less per block."""
        header, self._header = self._header, None
        return header

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                async with websockets.connect(self.url, open_timeout=5, max_size=2**22) as ws:
                    await ws.send(orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                                "params": ["newHeads"]}).decode())
                    reply = orjson.loads(await ws.recv())
                    if "error" in reply:
                        log.info("node offers no newHeads subscription; polling", error=str(reply["error"])[:100])
                        return
                    failures = 0
                    async for message in ws:
                        self._header = _header_of(message)
                        self.new_head.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any socket trouble: polling covers us while we reconnect
                failures += 1
                if failures == 1:
                    log.info("newHeads subscription unavailable; polling", error=str(exc)[:120])
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))


def _header_of(message: str | bytes) -> dict[str, Any] | None:
    """The header a ``newHeads`` notification carries, if it has what the follower reads."""
    try:
        header = orjson.loads(message)["params"]["result"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(header, dict) or not all(
            isinstance(header.get(k), str) for k in ("number", "hash", "parentHash", "timestamp")):
        return None
    return header
