"""Process tuning shared by the roles."""

from __future__ import annotations

import gc


def tune_gc(young_threshold: int = 50_000) -> None:
    """Keep everything loaded at start-up (modules, SQLAlchemy metadata, routes) out of every
    collection, and collect young objects less often. With the defaults, an API process under
    load stalls for tens of milliseconds in full collections, and an indexer backfill, which
    allocates millions of short-lived objects next to long-lived batches, rescans those batches
    thousands of times."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, 50, 100)
