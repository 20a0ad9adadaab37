"""Prometheus metrics shared by every role (each process exposes its own registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "openpay_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "openpay_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_PUBLISHED = Counter("openpay_outbox_published_total", "Outbox messages relayed to JetStream")
OUTBOX_BACKLOG = Gauge("openpay_outbox_backlog", "Outbox messages not yet relayed (last seen)")
MESSAGES_HANDLED = Counter(
    "openpay_messages_handled_total", "Bus messages handled by consumers", ["consumer", "outcome"]
)
# deposit sweeps (payments' scheduler job): what was swept, and what the last run left and why
SWEEP_DEPOSITS = Counter("openpay_sweep_deposits_total", "Deposit addresses swept (sweepBatch mined)")
SWEEP_BATCHES = Counter("openpay_sweep_batches_total", "sweepBatch transactions", ["outcome"])
SWEEP_SKIPPED = Gauge(
    "openpay_sweep_skipped_deposits", "Final deposits the last sweep run left, by reason", ["reason"]
)
SWEEP_SKIPPED_USDT = Gauge(
    "openpay_sweep_skipped_usdt", "USDT waiting at the deposits the last sweep run left, by reason", ["reason"]
)
SWEEP_GAS_PRICE = Gauge("openpay_sweep_gas_price_wei", "Gas price the last sweep run read from the chain")
