"""Open Pay node: domain core and runtime. `api/` and `indexer/` import it, never the reverse."""
