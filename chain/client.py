"""JSON-RPC clients: raw and fast (httpx, keep-alive, failover across URLs, retries), and an
AsyncWeb3 factory on top of the same transport.

The raw clients are what the indexer and :mod:`chain.txsender` use: no middleware, results
are the node's JSON (hex strings). JSON-RPC errors raise :class:`~chain.errors.RpcError`
(with ``code`` and ``data``, e.g. revert data for code 3); transport failures are retried on
each URL in turn and finally raise :class:`~chain.errors.RpcUnavailable`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from typing import Any, cast

import httpx
import orjson
from web3 import AsyncWeb3, Web3
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from chain.errors import RpcError, RpcUnavailable

DEFAULT_TIMEOUT = 10.0
_RETRYABLE_STATUS = {429, 500, 502, 503, 504}


def _check_urls(urls: str | Sequence[str]) -> list[str]:
    listed = [urls] if isinstance(urls, str) else list(urls)
    if not listed:
        raise ValueError("at least one RPC URL is required")
    return listed


def _result(reply: Any) -> Any:
    if not isinstance(reply, dict):
        raise RpcError(f"malformed JSON-RPC reply: {reply!r:.200}")
    if "error" in reply and reply["error"] is not None:
        error = reply["error"]
        raise RpcError(str(error.get("message", error)), code=error.get("code"), data=error.get("data"))
    return reply.get("result")


class _Failover:
    """Which URL to try next: stays on a URL that works, moves on when it fails."""

    def __init__(self, urls: list[str], retries: int, backoff: float) -> None:
        self.urls = urls
        self.retries = retries
        self.backoff = backoff
        self.current = 0
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def attempts(self) -> list[tuple[int, str, float]]:
        """(attempt, url, delay before it) for every try of one request."""
        plan = []
        for attempt in range(self.retries + 1):
            index = (self.current + attempt) % len(self.urls)
            delay = 0.0 if attempt < len(self.urls) else self.backoff * 2 ** (attempt - len(self.urls))
            plan.append((attempt, self.urls[index], min(delay, 5.0)))
        return plan

    def succeeded(self, url: str) -> None:
        self.current = self.urls.index(url)


class RpcClient:
    """Async JSON-RPC over HTTP with keep-alive, failover across ``urls`` and retries."""

    def __init__(self, urls: str | Sequence[str], *, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = 3, backoff: float = 0.2) -> None:
        self.urls = _check_urls(urls)
        self._failover = _Failover(self.urls, retries, backoff)
        self._client = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=16))

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, body: Any) -> Any:
        last: Exception | None = None
        for _attempt, url, delay in self._failover.attempts():
            if delay:
                await asyncio.sleep(delay)
            try:
                response = await self._client.post(url, json=body)
            except httpx.TransportError as exc:
                last = exc
                continue
            if response.status_code in _RETRYABLE_STATUS:
                last = RpcError(f"HTTP {response.status_code} from {url}")
                continue
            self._failover.succeeded(url)
            content = response.content
            # an httpx response and its stream refer to each other, so without this the body
            # (megabytes for a getLogs answer) would live until a full garbage collection
            response.stream = httpx.ByteStream(b"")
            try:
                return orjson.loads(content)
            except (ValueError, orjson.JSONDecodeError) as exc:
                raise RpcError(f"non-JSON reply from {url}: HTTP {response.status_code}") from exc
        raise RpcUnavailable(f"no RPC endpoint answered ({', '.join(self.urls)}): {last}")

    async def request(self, method: str, params: Sequence[Any] | None = None) -> Any:
        """Calls ``method`` and returns its ``result``; raises :class:`RpcError` on an error reply."""
        body = {"jsonrpc": "2.0", "id": self._failover.next_id(), "method": method, "params": list(params or [])}
        return _result(await self._post(body))

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Calls many methods in one HTTP request; results in order. Any error reply raises."""
        if not calls:
            return []
        first = self._failover.next_id()
        body = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)}
            for i, (m, p) in enumerate(calls)
        ]
        for _ in calls[1:]:
            self._failover.next_id()
        replies = await self._post(body)
        if not isinstance(replies, list):
            return [_result(replies)]
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        return [_result(by_id.get(first + i)) for i in range(len(calls))]

    async def chain_id(self) -> int:
        return int(await self.request("eth_chainId"), 16)


class SyncRpcClient:
    """The blocking twin of :class:`RpcClient` (deploy scripts, tests, benchmarks)."""

    def __init__(self, urls: str | Sequence[str], *, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = 3, backoff: float = 0.2) -> None:
        self.urls = _check_urls(urls)
        self._failover = _Failover(self.urls, retries, backoff)
        self._client = httpx.Client(timeout=timeout)

    def __enter__(self) -> SyncRpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _post(self, body: Any) -> Any:
        last: Exception | None = None
        for _attempt, url, delay in self._failover.attempts():
            if delay:
                time.sleep(delay)
            try:
                response = self._client.post(url, json=body)
            except httpx.TransportError as exc:
                last = exc
                continue
            if response.status_code in _RETRYABLE_STATUS:
                last = RpcError(f"HTTP {response.status_code} from {url}")
                continue
            self._failover.succeeded(url)
            return orjson.loads(response.content)
        raise RpcUnavailable(f"no RPC endpoint answered ({', '.join(self.urls)}): {last}")

    def request(self, method: str, params: Sequence[Any] | None = None) -> Any:
        body = {"jsonrpc": "2.0", "id": self._failover.next_id(), "method": method, "params": list(params or [])}
        return _result(self._post(body))

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if not calls:
            return []
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)} for i, (m, p) in enumerate(calls)]
        replies = self._post(body)
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        return [_result(by_id.get(i)) for i in range(len(calls))]


class FailoverAsyncProvider(AsyncJSONBaseProvider):
    """A web3.py async provider over :class:`RpcClient` (failover, retries, keep-alive)."""

    def __init__(self, urls: str | Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, retries: int = 3) -> None:
        super().__init__()
        self.rpc = RpcClient(urls, timeout=timeout, retries=retries)

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        body = self.form_request(method, params)
        return cast(RPCResponse, await self.rpc._post(body))

    async def disconnect(self) -> None:
        await self.rpc.aclose()


def make_async_web3(
    urls: str | Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, retries: int = 3
) -> AsyncWeb3[FailoverAsyncProvider]:
    """An AsyncWeb3 talking to ``urls`` (first that answers), with timeouts and retries."""
    return AsyncWeb3(FailoverAsyncProvider(urls, timeout=timeout, retries=retries))


def make_web3(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> Web3:
    """A blocking Web3 on one URL (deployment)."""
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
