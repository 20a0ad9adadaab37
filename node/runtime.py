"""Process tuning shared by the roles."""

from __future__ import annotations

import gc


def tune_gc(young_threshold: int = 50_000) -> None:
    """Keep everything loaded at start-up (modules, SQLAlchemy metadata, routes) out of every
    collection, and collect young objects less often: with the defaults a full collection
    rescans those objects and stalls the event loop for tens of milliseconds under load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, 50, 100)
