"""WorkerPruner: forget workers that died without saying so (SIGKILL, a lost host)."""

from __future__ import annotations

from .duty import StoreDuty


class WorkerPruner(StoreDuty):
    """Calls `store.prune_workers`. A worker that stops removes its own row; one that is
    killed cannot, and its row would stay forever. Rows silent for ten of their heartbeat
    intervals go (see store/presence.py); readers already stop counting them alive after
    three, so this only keeps the table to live and recently dead workers."""

    name = "worker_pruner"
    default_interval = 10.0

    def run_pass(self, limit: int) -> int:
        return self.store.prune_workers(limit=limit)
