"""Runs an application's schedules in one worker process.

Every process that runs the scheduler computes the same ticks, reads the time from the
database (so a skewed worker clock neither fires early nor late), and offers each due tick to
`Store.enqueue_tick`, whose unique (schedule, tick) row lets exactly one of them enqueue it. No
leader is elected, and nothing lives only in one process's memory: a restart resumes from the
latest tick recorded in the database, under the schedule's misfire policy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from ..store.base import Store
from ..store.records import NewJob
from .schedules import Schedule

logger = logging.getLogger("joobq_sql.scheduler")

#: A tick older than this when first seen was missed (no scheduler ran): the misfire policy
#: decides. Younger ticks are simply due and enqueued.
MISFIRE_GRACE = timedelta(seconds=5)
#: Ticks kept in the database for inspection; older ones are pruned (each schedule's latest
#: is always kept).
TICK_RETENTION_SECONDS = 86400.0


class SchedulerRunner:
    def __init__(
        self,
        store: Store,
        schedules: Sequence[Schedule],
        *,
        new_job: Callable[[Schedule], NewJob],
        clock: Callable[[], datetime] | None = None,
        max_wait: float = 0.5,
    ) -> None:
        self.store = store
        self.schedules = list(schedules)
        self._new_job = new_job
        self._clock = clock or store.now
        self._max_wait = max_wait
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
        if not self._cursors:
            self._start_cursors(now)
        enqueued = 0
        for schedule in self.schedules:
            for tick in schedule.ticks(self._cursors[schedule.name], now, limit=1000):
                if self.store.enqueue_tick(schedule.name, tick, self._new_job(schedule)):
                    enqueued += 1
                self._cursors[schedule.name] = tick
        self.enqueued += enqueued
        if time.monotonic() - self._last_prune > 600:
            self._last_prune = time.monotonic()
            self.store.prune_ticks(older_than=TICK_RETENTION_SECONDS)
        return enqueued

    def _start_cursors(self, now: datetime) -> None:
        """Where each schedule resumes: after its latest recorded tick, with missed ticks
        (older than the grace) skipped or caught up per its misfire policy."""
        recorded = self.store.last_ticks()
        horizon = now - MISFIRE_GRACE
        for schedule in self.schedules:
            last = recorded.get(schedule.name)
            if last is None:
                self._cursors[schedule.name] = now  # a new schedule: its first tick is ahead
                continue
            if last >= horizon:
                self._cursors[schedule.name] = last  # it ran moments ago: resume there
                continue
            missed = _all_ticks(schedule, last, horizon)
            if missed and schedule.misfire == "catch_up":
                keep = missed[-schedule.catch_up_limit :]
                logger.info("schedule %r: catching up %d missed ticks", schedule.name, len(keep))
                self._cursors[schedule.name] = keep[0] - timedelta(microseconds=1)
            else:
                if missed:
                    logger.info("schedule %r: skipping %d missed ticks", schedule.name, len(missed))
                self._cursors[schedule.name] = now


def _all_ticks(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """The ticks in (after, until], in pages, so a long downtime is counted but bounded."""
    ticks: list[datetime] = []
    cursor = after
    while len(ticks) < 100_000:
        page = schedule.ticks(cursor, until, 1000)
        ticks.extend(page)
        if len(page) < 1000:
            break
        cursor = page[-1]
    return ticks
