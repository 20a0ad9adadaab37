"""One HTTP attempt of a delivery: pooled keep-alive clients, a total deadline,
no redirects, a capped read of the answer, the SSRF guard at connect time."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpcore
import httpx

from node.config import Settings
from node.webhooks.targets import GuardedBackend, TargetPolicy, TargetRefused, policy_for


@dataclass(frozen=True)
class AttemptOutcome:
    success: bool
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None


def _client(policy: TargetPolicy, settings: Settings) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=settings.webhook_max_in_flight,
                          max_keepalive_connections=settings.webhook_max_in_flight, keepalive_expiry=30.0)
    transport = httpx.AsyncHTTPTransport(limits=limits)
    # httpx builds its pool without a way to pass a network backend; this one is the same pool
    # with the guarded backend, so every new connection goes to a checked address
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry, http1=True, http2=False,
        network_backend=GuardedBackend(policy),
    )
    return httpx.AsyncClient(transport=transport, follow_redirects=False,
                             timeout=httpx.Timeout(settings.webhook_timeout_s))


class WebhookSender:
    """Holds one pooled client per target policy; open once per process, close at exit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client_for(self, policy: TargetPolicy) -> httpx.AsyncClient:
        client = self._clients.get(policy.name)
        if client is None:
            client = self._clients[policy.name] = _client(policy, self.settings)
        return client

    async def send(self, url: str, mode: str, headers: dict[str, str], body: bytes) -> AttemptOutcome:
        started = time.perf_counter()

        def outcome(success: bool, code: int | None, excerpt: str | None, error: str | None) -> AttemptOutcome:
            return AttemptOutcome(success, code, int((time.perf_counter() - started) * 1000), excerpt, error)

        try:
            policy = policy_for(url, mode, self.settings)
            async with asyncio.timeout(self.settings.webhook_timeout_s):
                async with self._client_for(policy).stream("POST", url, content=body, headers=headers) as response:
                    answer = await self._read_capped(response)
        except TargetRefused as exc:
            return outcome(False, None, None, f"refused: {exc}")
        except TimeoutError:
            return outcome(False, None, None, f"timeout after {self.settings.webhook_timeout_s:g} s")
        except httpx.HTTPError as exc:
            return outcome(False, None, None, f"{type(exc).__name__}: {exc}"[:500])
        except OSError as exc:
            return outcome(False, None, None, f"{type(exc).__name__}: {exc}"[:500])
        excerpt = answer.decode("utf-8", "replace")[: self.settings.webhook_response_excerpt_chars]
        code = response.status_code
        success = 200 <= code < 300
        return outcome(success, code, excerpt, None if success else f"HTTP {code}")

    async def _read_capped(self, response: httpx.Response) -> bytes:
        cap = self.settings.webhook_response_cap_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size >= cap:
                break  # the rest is not read; the connection is dropped, not reused
        return b"".join(chunks)[:cap]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
