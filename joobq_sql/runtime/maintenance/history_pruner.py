"""HistoryPruner: forget per-minute throughput older than a day, and workers silent as long."""

from __future__ import annotations

from .duty import StoreDuty

#: How long per-minute throughput (and a silent worker's row) is kept.
HISTORY_RETENTION = 86400.0


class HistoryPruner(StoreDuty):
    """Calls `store.prune_history`; the rows it removes are few (one per queue and minute), so
    a single pass per run is enough."""

    name = "history_pruner"
    default_interval = 600.0

    def run_pass(self, limit: int) -> int:
        self.store.prune_history(older_than=HISTORY_RETENTION)
        return 0  # one statement does the whole prune: never ask for another pass
