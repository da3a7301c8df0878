"""CompletedPruner: delete kept completed jobs once their retention is over."""

from __future__ import annotations

from .duty import StoreDuty


class CompletedPruner(StoreDuty):
    """Calls `store.prune_completed`; a no-op for a store that deletes jobs on completion
    (keep_completed unset), so it is harmless to run always."""

    name = "completed_pruner"
    default_interval = 300.0

    def run_pass(self, limit: int) -> int:
        return self.store.prune_completed(limit=limit)
