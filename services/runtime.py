"""How the serving process runs: settings for the interpreter itself."""

from __future__ import annotations

import gc

# Allocations between young-generation collections (CPython's default is 2,000). Requests
# and syncs make many short-lived objects that reference counting frees anyway; collecting
# every 2,000 allocations stalled the event loop often enough to double the 99th percentile
# of webhook answers (bench/README.md).
YOUNG_COLLECTION_EVERY = 50_000


def tune_gc() -> None:
    """Call once everything long-lived is built (modules, app, templates): those objects are
    moved out of the collector's sight (gc.freeze), so a full collection no longer walks
    them, and young collections run less often."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 20, 20)
