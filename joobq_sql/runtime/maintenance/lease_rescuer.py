"""LeaseRescuer: requeue jobs whose worker stopped renewing its lease (it crashed or hung)."""

from __future__ import annotations

from .duty import StoreDuty


class LeaseRescuer(StoreDuty):
    """Calls `store.rescue_expired_leases` for every queue. A rescued job goes back to its
    queue, or to dead if the lost run was its last; a live lease is never touched.

    The interval bounds how long a dead worker's jobs wait beyond their lease (JoobQ's reaper
    runs every 30 seconds).
    """

    name = "lease_rescuer"
    default_interval = 30.0

    def run_pass(self, limit: int) -> int:
        return len(self.store.rescue_expired_leases(limit=limit))
