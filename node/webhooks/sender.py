"""One HTTP attempt of a delivery: pooled keep-alive connections, a total deadline,
no redirects, a capped read of the answer, the SSRF guard at connect time
(``node.webhooks.http`` says why it is not aiohttp or httpx)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from dataclasses import dataclass

from node.config import Settings
from node.webhooks.http import WebhookClient
from node.webhooks.targets import TargetPolicy, TargetRefused, policy_for


@dataclass(frozen=True)
class AttemptOutcome:
    success: bool
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None


class WebhookSender:
    """One client per process (HTTP/1.1 keep-alive; the dispatcher bounds the requests in flight
    per endpoint and overall, so as many connections stay open); open once per process, close at exit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = WebhookClient(response_cap=settings.webhook_response_cap_bytes,
                                    idle_per_target=settings.webhook_max_in_flight)
        self._policies: dict[tuple[str, str], TargetPolicy | TargetRefused] = {}

    def _policy(self, url: str, mode: str) -> TargetPolicy:
        # the URL's rules (scheme, mode) never change; the addresses are checked per connection
        policy = self._policies.get((url, mode))
        if policy is None:
            if len(self._policies) > 10_000:
                self._policies.clear()
            try:
                policy = policy_for(url, mode, self.settings)
            except TargetRefused as exc:
                policy = exc
            self._policies[(url, mode)] = policy
        if isinstance(policy, TargetRefused):
            raise policy
        return policy

    async def send(
        self, url: str, mode: str, headers: dict[str, str], body: bytes, *, endpoint: Hashable = None,
    ) -> AttemptOutcome:
        started = time.perf_counter()

        def outcome(success: bool, code: int | None, excerpt: str | None, error: str | None) -> AttemptOutcome:
            return AttemptOutcome(success, code, int((time.perf_counter() - started) * 1000), excerpt, error)

        try:
            policy = self._policy(url, mode)
            async with asyncio.timeout(self.settings.webhook_timeout_s):
                response = await self.client.post(url, policy, headers, body)
        except TargetRefused as exc:
            return outcome(False, None, None, f"refused: {exc}")
        except TimeoutError:
            return outcome(False, None, None, f"timeout after {self.settings.webhook_timeout_s:g} s")
        except (OSError, ValueError) as exc:  # ConnectionError, ssl.SSLError and DNS errors are OSErrors
            return outcome(False, None, None, f"{type(exc).__name__}: {exc}"[:500])
        code = response.status
        excerpt = response.body[: self.settings.webhook_response_excerpt_chars * 4].decode("utf-8", "replace")
        success = 200 <= code < 300
        return outcome(success, code, excerpt[: self.settings.webhook_response_excerpt_chars],
                       None if success else f"HTTP {code}")

    async def aclose(self) -> None:
        self.client.close()
