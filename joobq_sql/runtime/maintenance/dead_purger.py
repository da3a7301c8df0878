"""DeadPurger: delete dead jobs once their dead-letter time is over."""

from __future__ import annotations

from .duty import StoreDuty


class DeadPurger(StoreDuty):
    """Calls `store.purge_dead`. Dead letters are kept for inspection and re-driving until
    their expiration (JoobQ never purges them; we do, so the table does not grow forever)."""

    name = "dead_purger"
    # Expirations are days apart by default, so checking every few minutes is plenty.
    default_interval = 300.0

    def run_pass(self, limit: int) -> int:
        return self.store.purge_dead(limit=limit)
