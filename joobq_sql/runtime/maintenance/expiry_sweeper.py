"""ExpirySweeper: send waiting jobs past their expiry to dead, with reason "expired"."""

from __future__ import annotations

from .duty import StoreDuty


class ExpirySweeper(StoreDuty):
    """Calls `store.expire_waiting_jobs`. Claims already skip expired jobs; sweeping them keeps
    them from piling up at the head of the queue and records why they never ran."""

    name = "expiry_sweeper"
    default_interval = 30.0

    def run_pass(self, limit: int) -> int:
        return len(self.store.expire_waiting_jobs(limit=limit))
