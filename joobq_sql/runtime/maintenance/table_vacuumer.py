"""TableVacuumer: VACUUM joobq's hot table when autovacuum falls behind its churn.

Every job leaves two dead row versions in the jobs table, and until a VACUUM removes them the
claim index's head is full of entries for jobs already claimed, the table and its indexes grow,
and claims slow down. Autovacuum would remove them, but its launcher visits a database only
every `autovacuum_naptime` (one minute by default): at a few thousand jobs a second that is
hundreds of thousands of dead versions, and on a managed server the naptime is often not the
user's to change. This duty reads the table's statistics every few seconds and vacuums it
itself once dead versions pass a share of it.

- Only joobq's jobs table, never the database.
- Nothing to do while the server keeps up: with autovacuum waking often enough, the dead
  share stays under the threshold and the duty only reads one row of statistics.
- One process at a time without a lock of our own: VACUUM (SKIP_LOCKED) skips a table that
  another VACUUM (an autovacuum, another worker process's duty) is working on, and the duty
  does not start one while the statistics show one running.
- A VACUUM that could remove little (a long transaction still sees the dead versions) is not
  repeated at once: the wait before the next one doubles, up to MAX_GAP.
- A role that may not VACUUM the table (it needs to own it, or, from PostgreSQL 17, the
  MAINTAIN privilege) gets one warning, and the duty turns itself off for this process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from ...store.base import Store
from ...store.table_health import TableHealth, VacuumRefusedError
from .duty import Duty

#: The dead share of the table (dead / (live + dead) row versions) above which it is vacuumed.
DEFAULT_DEAD_SHARE = 0.1
#: Fewer dead versions than this are not worth a VACUUM: page pruning copes with a small table.
MIN_DEAD_ROWS = 1000
#: The longest wait between two VACUUMs that could not remove most dead versions.
MAX_GAP = 300.0

_log = logging.getLogger("joobq_sql.runtime.maintenance")


class TableVacuumer(Duty):
    """Vacuums the jobs table of `store` when its dead share passes `dead_share` and no
    VACUUM ran on it within the last `interval` seconds (longer after one that removed
    little). `run_once` returns the dead row versions its VACUUM removed (0 when none ran)."""

    name = "table_vacuumer"
    default_interval = 2.0

    def __init__(
        self,
        store: Store,
        *,
        interval: float | timedelta | None = None,
        dead_share: float = DEFAULT_DEAD_SHARE,
        min_dead_rows: int = MIN_DEAD_ROWS,
        logger: logging.Logger | None = None,
    ) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"{self.name} needs a joobq_sql.Store, got {store!r}")
        super().__init__(interval=interval)
        if isinstance(dead_share, bool) or not isinstance(dead_share, int | float):
            raise TypeError(f"{self.name} dead_share must be a number, got {dead_share!r}")
        if not 0 < dead_share <= 1:
            raise ValueError(f"{self.name} dead_share must be > 0 and at most 1, got {dead_share}")
        if isinstance(min_dead_rows, bool) or not isinstance(min_dead_rows, int):
            raise TypeError(f"{self.name} min_dead_rows must be an int, got {min_dead_rows!r}")
        if min_dead_rows < 0:
            raise ValueError(f"{self.name} min_dead_rows must be >= 0, got {min_dead_rows}")
        self.store = store
        self.dead_share = float(dead_share)
        self.min_dead_rows = min_dead_rows
        self._log = logger or _log
        #: False once the server refused this role a VACUUM: the duty does nothing after.
        self.enabled = True
        #: Seconds that must pass after any VACUUM of the table before this duty runs one.
        self.gap = self.interval
        #: VACUUMs this duty ran, and the figures before and after the last one.
        self.vacuums = 0
        self.last: tuple[TableHealth, TableHealth] | None = None

    def due(self, health: TableHealth) -> bool:
        """Whether `health` calls for a VACUUM now."""
        recent = health.since_vacuum_s is not None and health.since_vacuum_s < self.gap
        return (
            not health.vacuuming
            and not recent
            and health.dead_rows >= self.min_dead_rows
            and health.dead_share >= self.dead_share
        )

    def run_pass(self, limit: int) -> int:
        return self.run_once()

    def run_once(self, *, should_stop: Callable[[], bool] | None = None) -> int:
        self.backlogged = False
        if not self.enabled:
            return 0
        removed = 0
        for health in self.store.hot_table_health():
            if not self.due(health):
                continue
            if not health.may_vacuum:
                self._disable(health.table, "the role is not the table's owner, nor has MAINTAIN")
                return removed
            try:
                if not self.store.vacuum_jobs_table():
                    continue  # another VACUUM holds the table: it does the work
            except VacuumRefusedError as exc:
                self._disable(health.table, str(exc))
                return removed
            self.vacuums += 1
            removed += self._judge(health)
        return removed

    def _judge(self, before: TableHealth) -> int:
        """Lengthen the gap after a VACUUM that left most dead versions behind, else reset it;
        return how many it removed."""
        after = next((h for h in self.store.hot_table_health() if h.table == before.table), None)
        if after is None:
            return 0
        self.last = (before, after)
        if after.dead_rows * 2 > before.dead_rows:
            self.gap = min(self.gap * 2, max(MAX_GAP, self.interval))
            self._log.info(
                "VACUUM of the %s table removed few dead row versions (%d of %d are left: an "
                "open transaction still sees them); next one in %.0fs at the earliest",
                before.table,
                after.dead_rows,
                before.dead_rows,
                self.gap,
            )
        else:
            self.gap = self.interval
        return max(before.dead_rows - after.dead_rows, 0)

    def _disable(self, table: str, reason: str) -> None:
        self.enabled = False
        self._log.warning(
            "%s is off: this role may not VACUUM %s.%s (%s); the table relies on the server's "
            "autovacuum alone. Run the workers as the table's owner, or GRANT MAINTAIN ON it "
            "(PostgreSQL 17+), or set self_vacuum = false to silence this",
            self.name,
            self.store.schema or "",
            table,
            reason,
        )
