"""Runs an application's schedules in one worker process.

Every process that runs the scheduler computes the same ticks, reads the time from the
database (so a skewed worker clock neither fires early nor late), and offers each due tick to
`Store.enqueue_tick`, whose unique (schedule, tick) row lets exactly one of them enqueue it. No
leader is elected, and nothing lives only in one process's memory: a restart resumes from the
latest tick recorded in the database, under the schedule's misfire policy.

The misfire policy (misfire.py) is not only for restarts: whenever a schedule's next tick is
older than the grace when a pass gets to it (the process was paused, the database was down for
a while), the pass first catches up with the ticks other processes recorded meanwhile, then
skips or catches up what is still missed. The database refuses any tick at or before a
schedule's newest recorded one, so a lagging cursor can never enqueue a tick twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from .. import _validation as check
from ..store.base import Store
from ..store.records import NewJob
from .misfire import resume_after
from .schedules import Schedule

logger = logging.getLogger("joobq_sql.scheduler")

#: A tick older than this when a pass first gets to it was missed (no scheduler ran, or the
#: one that runs stalled): the misfire policy decides. Younger ticks are simply due.
MISFIRE_GRACE = timedelta(seconds=5)
#: Ticks kept in the database for inspection; older ones are pruned (each schedule's latest
#: is always kept).
TICK_RETENTION_SECONDS = 86400.0
#: Ticks one pass offers per schedule at most; the rest wait for the next pass.
TICKS_PER_PASS = 1000


class SchedulerRunner:
    def __init__(
        self,
        store: Store,
        schedules: Sequence[Schedule],
        *,
        new_job: Callable[[Schedule], NewJob],
        clock: Callable[[], datetime] | None = None,
        max_wait: float = 0.5,
        misfire_grace: timedelta = MISFIRE_GRACE,
    ) -> None:
        self.store = store
        self.schedules = list(schedules)
        self._new_job = new_job
        self._clock = clock or store.now
        self._max_wait = max_wait
        self._grace = timedelta(
            seconds=check.seconds(misfire_grace, what="misfire_grace", allow_zero=False)
        )
        self._cursors: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="joobq-scheduler", daemon=True)
        self._last_prune = 0.0
        self.enqueued = 0
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
                wait = self._max_wait
            except Exception as exc:
                self.errors += 1
                logger.warning("scheduler pass failed (%s); retrying", exc)
                wait = min(self._max_wait * 4, 5.0)
            self._stop.wait(wait)

    def run_once(self) -> int:
        """Offer every due tick of every schedule once; return how many jobs this call enqueued."""
        now = self._clock()
        late = [s for s in self.schedules if self._is_late(s, now)]
        if late:
            self._resume(late, now)
        enqueued = 0
        for schedule in self.schedules:
            for tick in schedule.ticks(self._cursors[schedule.name], now, TICKS_PER_PASS):
                if self.store.enqueue_tick(schedule.name, tick, self._new_job(schedule)):
                    enqueued += 1
                self._cursors[schedule.name] = tick
        self.enqueued += enqueued
        if time.monotonic() - self._last_prune > 600:
            self._last_prune = time.monotonic()
            self.store.prune_ticks(older_than=TICK_RETENTION_SECONDS)
        return enqueued

    def _is_late(self, schedule: Schedule, now: datetime) -> bool:
        """Whether `schedule` has no cursor yet (start-up), or its next tick is older than
        the grace: this process stalled, and the misfire policy must look at it."""
        cursor = self._cursors.get(schedule.name)
        return cursor is None or bool(schedule.ticks(cursor, now - self._grace, 1))

    def _resume(self, schedules: list[Schedule], now: datetime) -> None:
        """Move the cursors of late `schedules`: past the latest tick recorded by any process
        (or this one), then past the missed ticks their misfire policy drops."""
        recorded = self.store.last_ticks()
        for schedule in schedules:
            known = [
                t for t in (self._cursors.get(schedule.name), recorded.get(schedule.name)) if t
            ]
            if not known:
                self._cursors[schedule.name] = now  # a new schedule: its first tick is ahead
                continue
            self._cursors[schedule.name] = resume_after(schedule, max(known), now, self._grace)
