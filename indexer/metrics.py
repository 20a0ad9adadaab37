"""The indexer's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

HEAD = Gauge("openpay_indexer_head_block", "Chain head seen by the indexer")
CURSOR = Gauge("openpay_indexer_cursor_block", "Last block whose logs are committed")
FINALIZED = Gauge("openpay_indexer_finalized_block", "Last final block")
LAG_BLOCKS = Gauge("openpay_indexer_lag_blocks", "Head minus cursor")
LAG_SECONDS = Gauge("openpay_indexer_lag_seconds", "Age of the cursor block")
EVENTS = Counter("openpay_indexer_events_total", "Logs indexed", ["event"])
REORGS = Counter("openpay_indexer_reorgs_total", "Reorgs undone")
RPC_ERRORS = Counter("openpay_indexer_rpc_errors_total", "RPC errors seen by the indexer", ["kind"])
LEADER = Gauge("openpay_indexer_leader", "1 while this process holds the chain's indexer lock")
