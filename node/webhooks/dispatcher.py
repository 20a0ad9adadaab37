"""The delivery loop of the worker role.

Claims due deliveries from the table (a lease, so a dead worker's deliveries come
back), POSTs them with bounded concurrency per endpoint and overall, and writes
the results in batches. Retries are rows whose ``next_attempt_at`` lies ahead:
the loop finds them by polling and on wake-ups (``NOTIFY`` from new deliveries
and replays); nothing sleeps on a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import structlog
from prometheus_client import Counter, Gauge, Histogram

from node.config import Settings
from node.db import Database
from node.webhooks import repository as repo
from node.webhooks.sender import WebhookSender
from node.webhooks.service import after_attempt, lease_s, signing_keys
from node.webhooks.signing import MerchantKeys, signed_headers

log = structlog.get_logger(__name__)

KEY_CACHE_S = 10.0
SLOW_CLAIM_S = 0.05
ANALYZE_EVERY_S = 60.0

ATTEMPTS = Counter("openpay_webhook_attempts_total", "Webhook delivery attempts by the delivery's next state",
                   ["status"])
ATTEMPT_SECONDS = Histogram("openpay_webhook_attempt_seconds", "Duration of webhook HTTP attempts",
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
IN_FLIGHT = Gauge("openpay_webhook_in_flight", "Webhook requests in flight in this process")


class DeliveryDispatcher:
    def __init__(self, db: Database, settings: Settings, sender: WebhookSender | None = None) -> None:
        self.db = db
        self.settings = settings
        self.sender = sender or WebhookSender(settings)
        self._own_sender = sender is None
        self._in_flight: dict[uuid.UUID, int] = defaultdict(int)
        self._total = 0
        self._limits: dict[uuid.UUID, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: list[repo.AttemptRecord] = []
        self._have_results = asyncio.Event()
        self._wake = asyncio.Event()
        self._more_due = False
        self._analyzed_at = -ANALYZE_EVERY_S
        self._keys: dict[uuid.UUID, tuple[float, MerchantKeys]] = {}
        self._key_locks: dict[uuid.UUID, asyncio.Lock] = defaultdict(asyncio.Lock)

    # --- claiming ---

    async def dispatch_once(self) -> int:
        """Claims what is due (up to free capacity) and starts sending it; returns how many."""
        free = min(self.settings.webhook_max_in_flight - self._total, self.settings.webhook_claim_batch)
        if free <= 0:
            return 0
        per_endpoint = self.settings.webhook_endpoint_concurrency
        saturated = [e for e, n in self._in_flight.items() if n >= per_endpoint]
        # one statement, so no transaction around it: BEGIN and COMMIT were two of its three round trips
        async with self.db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            started = time.monotonic()
            claimed = await repo.claim_due(conn, limit=free, per_endpoint=per_endpoint,
                                           lease_s=lease_s(self.settings), saturated=saturated)
            claim_s = time.monotonic() - started
        self._more_due = len(claimed) >= free
        for delivery in claimed:
            self._in_flight[delivery.endpoint_id] += 1
            self._total += 1
            IN_FLIGHT.inc()
            task = asyncio.ensure_future(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if claim_s > SLOW_CLAIM_S and started > self._analyzed_at + ANALYZE_EVERY_S:
            # a claim walks the due index in order and stops at its limit, unless the planner's
            # statistics predate a burst (thousands due at once after a replay or a batch of events):
            # then it sorts every due row for each claim (60 ms at 20,000 instead of 4 ms). After the
            # claimed deliveries are on their way, and a failure only logged: they are committed
            self._analyzed_at = started
            try:
                async with self.db.engine.connect() as conn:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await repo.analyze_deliveries(conn)
            except Exception as exc:  # statistics can wait for the next slow claim
                log.warning("refreshing delivery statistics failed", error=repr(exc))
        return len(claimed)

    # --- sending ---

    async def _keys_for(self, merchant_id: uuid.UUID) -> MerchantKeys:
        cached = self._keys.get(merchant_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        async with self._key_locks[merchant_id]:
            cached = self._keys.get(merchant_id)
            if cached and cached[0] > time.monotonic():
                return cached[1]
            async with self.db.unit_of_work() as session:
                keys = await signing_keys(session, self.settings, merchant_id)
            self._keys[merchant_id] = (time.monotonic() + KEY_CACHE_S, keys)
            return keys

    def _limit(self, endpoint_id: uuid.UUID) -> asyncio.Semaphore:
        limit = self._limits.get(endpoint_id)
        if limit is None:
            limit = self._limits[endpoint_id] = asyncio.Semaphore(self.settings.webhook_endpoint_concurrency)
        return limit

    async def _deliver(self, delivery: repo.ClaimedDelivery) -> None:
        try:
            async with self._limit(delivery.endpoint_id):
                started = datetime.now(UTC)
                try:
                    keys = await self._keys_for(delivery.merchant_id)
                except Exception as exc:
                    # without its key nothing can be sent; the lease brings it back later
                    log.warning("webhook keys unavailable", merchant_id=str(delivery.merchant_id), error=repr(exc))
                    return
                headers = signed_headers(keys, delivery_id=delivery.id, event_type=delivery.event_type,
                                         attempt=delivery.attempt, body=delivery.body)
                outcome = await self.sender.send(delivery.url, delivery.mode, headers, delivery.body,
                                                 endpoint=delivery.endpoint_id)
            status, next_at = after_attempt(self.settings, delivery.attempt, outcome.success, datetime.now(UTC))
            ATTEMPTS.labels(status).inc()
            ATTEMPT_SECONDS.observe(outcome.latency_ms / 1000)
            self._results.append(repo.AttemptRecord(
                delivery_id=delivery.id, attempt=delivery.attempt, started_at=started, success=outcome.success,
                status_code=outcome.status_code, latency_ms=outcome.latency_ms,
                response_excerpt=outcome.response_excerpt, error=outcome.error, status=status,
                next_attempt_at=next_at,
            ))
            self._have_results.set()
        finally:
            self._in_flight[delivery.endpoint_id] -= 1
            if not self._in_flight[delivery.endpoint_id]:
                del self._in_flight[delivery.endpoint_id]
            self._total -= 1
            IN_FLIGHT.dec()
            self._wake.set()  # capacity freed: claim more without waiting for the results to be written

    # --- recording ---

    async def flush(self) -> int:
        results, self._results = self._results, []
        self._have_results.clear()
        if not results:
            return 0
        try:
            async with self.db.engine.connect() as conn:  # one statement: no BEGIN/COMMIT round trips
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await repo.record_attempts(conn, results)
        except Exception:
            self._results[:0] = results  # kept for the next flush; the lease covers a crash meanwhile
            raise
        self._wake.set()  # the next delivery of a key, and the freed capacity, may go now
        return len(results)

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set() or self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._have_results.wait(), 0.5)
            try:
                await self.flush()
            except Exception as exc:
                log.warning("webhook results not recorded yet", error=repr(exc))
                await asyncio.sleep(1.0)
        await self.flush()

    # --- the loop ---

    async def _listen(self) -> object:
        import asyncpg

        conn = await asyncpg.connect(self.db.dsn)
        await conn.add_listener(repo.WAKE_CHANNEL, lambda *_: self._wake.set())
        return conn

    async def run(self, stop: asyncio.Event) -> None:
        listener = await self._listen()
        flusher = asyncio.ensure_future(self._flush_loop(stop))
        try:
            while not stop.is_set():
                # cleared before claiming, so a wake-up that arrives meanwhile is not lost
                self._wake.clear()
                try:
                    claimed = await self.dispatch_once()
                except Exception as exc:
                    log.warning("webhook claim failed", error=repr(exc))
                    claimed = 0
                    await asyncio.sleep(1.0)
                # a claim that filled its batch may have left more due; a partial one took all there was
                if claimed and self._more_due and self._total < self.settings.webhook_max_in_flight:
                    continue
                stopping = asyncio.ensure_future(stop.wait())
                waking = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait([stopping, waking], timeout=self.settings.webhook_poll_interval_s,
                                   return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                waking.cancel()
        finally:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=self.settings.webhook_timeout_s + 1)
            await flusher
            await listener.close()  # type: ignore[attr-defined]
            if self._own_sender:
                await self.sender.aclose()
