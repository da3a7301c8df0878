"""A threaded queue's sync timeouts: the watchdog thread of queue_runner.py (QueueRunner).

At a sync run's deadline it raises JobTimeout in the run's thread, moves the run out of its
slot (`overrunning`: still held, its lease renewed) and has the slot served by a fresh thread;
it reports the run's failure only once that thread has ended, since until then its retry must
not be claimable (see timeouts.py). Async runs of a threaded queue are timed out by their own
wait (QueueRunner._perform), not here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from uuid import UUID

from .thread_runs import Run, Slot
from .timeouts import JobTimeout, raise_in_thread

logger = logging.getLogger("joobq_sql.worker")


class Watchdog:
    """Times out the overdue sync runs among `runs` (the runner's, guarded by `lock`)."""

    def __init__(
        self,
        *,
        name: str,
        lock: threading.Lock,
        runs: dict[UUID, Run],
        runs_changed: threading.Condition,
        stopping: threading.Event,
        counters: dict[str, int],
        fail: Callable[[Run, BaseException, bool], None],
        free_slot: Callable[[Slot], None],
    ) -> None:
        self._runs = runs
        self._lock = lock
        self._runs_changed = runs_changed
        self._stopping = stopping
        self._counters = counters
        self._fail = fail  # (run, exc, cancelled): hand the failure to the acker
        self._free_slot = free_slot  # a fresh thread for the slot, unless shutdown began
        #: Notified (the lock held) when a sync run with a deadline starts.
        self.deadlines = threading.Condition(lock)
        #: Sync runs past their timeout whose thread still runs: still held (their leases are
        #: renewed, their retry not yet claimable), but no longer in a slot.
        self.overrunning: dict[UUID, Run] = {}
        self._finished = False
        self._thread = threading.Thread(
            target=self._watch_loop, name=f"joobq-watchdog-{name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop watching, even if a stuck sync job still runs, timed out or not."""
        with self._lock:
            self._finished = True
            self.deadlines.notify_all()
        self._thread.join(timeout=timeout)

    def _watch_loop(self) -> None:
        while True:
            with self._lock:
                if self._finished or (
                    self._stopping.is_set() and not self._runs and not self.overrunning
                ):
                    return
                now = time.monotonic()
                overdue = [
                    r
                    for r in self._runs.values()
                    if r.deadline is not None and r.deadline <= now and not r.is_async
                ]
                for run in overdue:
                    run.state = "timed_out"
                    run.slot.retired = True
                    run.thread = run.slot.thread  # before the slot gets a fresh one
                    del self._runs[run.record.jid]
                    self.overrunning[run.record.jid] = run
                ended = [
                    r
                    for r in self.overrunning.values()
                    if r.thread is None or not r.thread.is_alive()
                ]
                if not overdue and not ended:
                    deadlines = [
                        r.deadline
                        for r in self._runs.values()
                        if r.deadline is not None and not r.is_async
                    ]
                    wait = min(deadlines) - now if deadlines else 1.0
                    if self.overrunning:
                        wait = min(wait, 0.05)  # a thread's end is polled, not signalled
                    self.deadlines.wait(max(min(wait, 1.0), 0.001))
                    continue
            for run in overdue:
                self._time_out(run)
            for run in ended:
                self._report_timed_out(run)

    def _time_out(self, run: Run) -> None:
        self._counters["timed_out"] += 1
        if run.thread is not None:
            raise_in_thread(run.thread, JobTimeout)
        logger.warning(
            "job %s (%s) attempt %d ran past its timeout of %gs: JobTimeout raised in its "
            "thread; it is retried (or dead) once that thread has ended",
            run.record.jid,
            run.record.job_type,
            run.record.attempt,
            run.timeout,
        )
        self._free_slot(run.slot)

    def _report_timed_out(self, run: Run) -> None:
        """The timed-out run's thread has ended: fail it now (a cancel asked meanwhile wins)."""
        exc = JobTimeout(f"the job did not finish within {run.timeout:g}s")
        self._fail(run, exc, run.job.cancel_requested)  # held by the acker now
        with self._lock:
            self.overrunning.pop(run.record.jid, None)
            self._runs_changed.notify_all()
