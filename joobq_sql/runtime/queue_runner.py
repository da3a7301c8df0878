"""The thread executor of a queue runner (runner_core.py): `workers` worker threads that
build the claimed jobs' Job objects and perform them, a fetcher thread that runs the claim loop
(fetcher.py; it only claims and buffers, as it is a drain's critical path), and a watchdog
that enforces sync timeouts (thread_watchdog.py).

Concurrency: exactly `workers` worker threads take jobs, so at most `workers` jobs of the queue
run at once. The fetcher claims for the free slots, at most `worker_batch_size` per claim, and,
while the queue's recent runs are short (a tenth of `claim_ahead`, 5 ms, or less), ahead of
them (see claim_ahead.py): jobs of a few microseconds are then claimed a batch per round trip,
however few the slots; longer jobs are claimed one per free slot. A claimed job does not wait
behind a long run: once a run outlasts its estimate by `claim_ahead`, the jobs waiting behind it
beyond what the other slots are expected to start within that time are handed back unchanged
(release_jobs: no retry spent), for another worker. A fixed `prefetch` is opt-in.
Claimed jobs not yet started (the moment between claim and start, or a job waiting for its
queue's throttle) are released at once on shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from ..job import Job
from ..settings import Settings
from ..store.base import Store, decode_claimed
from ..store.records import JobRecord
from .acker import Acker
from .async_loop import AsyncLoop
from .error_monitor import ErrorMonitor
from .fetch_steps import ThreadSteps, drive
from .fetcher import ClaimSizer
from .give_backs import SHUTDOWN_TRIES
from .middleware import JobContext, Middleware, ShutdownBeforeStart, ThrottleMiddleware, chain
from .runner_core import RunnerCore
from .thread_runs import Run, Slot, is_async, is_cancellation
from .thread_watchdog import Watchdog
from .throttle import Throttle
from .timeouts import JobTimeout

logger = logging.getLogger("joobq_sql.worker")


class QueueRunner(RunnerCore[Run]):
    """The thread executor of a queue (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        workers: int,
        store: Store,
        worker_id: str,
        settings: Settings,
        middlewares: Sequence[Middleware],
        acker: Acker,
        async_loop: AsyncLoop,
        errors: ErrorMonitor,
        throttle: Throttle | None = None,
    ) -> None:
        super().__init__(
            name=name,
            workers=workers,
            worker_id=worker_id,
            settings=settings,
            middlewares=middlewares,
            acker=acker,
            async_loop=async_loop,
            errors=errors,
            sizer=ClaimSizer.of(settings, workers, ahead=True),
            hands_on=True,
        )
        self.store = store
        self._stopping = threading.Event()
        if throttle is not None:
            self.middlewares.insert(0, ThrottleMiddleware(throttle, self._stopping))
        # Three conditions on one lock, so each change wakes only the threads it concerns:
        # a worker per buffered job (not all of them), the watchdog on a new deadline (its
        # own), and shutdown's wait_idle when a run ends.
        self._work = threading.Condition(self._lock)
        self._runs_changed = threading.Condition(self._lock)
        self._watchdog = Watchdog(
            name=name,
            lock=self._lock,
            runs=self._runs,
            runs_changed=self._runs_changed,
            stopping=self._stopping,
            counters=self.counters,
            fail=self._fail_timed_out,
            free_slot=self._free_slot,
        )
        # Sync runs past their timeout whose thread still runs (the watchdog's): still held.
        self._overrunning = self._watchdog.overrunning
        # Claimed records waiting for a slot. Their Job objects are built by the slot that
        # takes them (see _take), not by the fetcher: a drain's fetcher is its critical path.
        self._buffer: deque[JobRecord] = deque()
        # Taken from the buffer by a slot that is building its Job: still held.
        self._starting: set[UUID] = set()
        # Runs over and out of `_runs` whose outcome is not yet with the acker (or released):
        # still held, so that a release of unseen claims (see give_backs.py) never takes them.
        self._finishing: set[UUID] = set()
        self._wake = threading.Event()
        self._do = ThreadSteps(store, wake=self._wake, stop=self._stopping)
        self._slots = [Slot(i) for i in range(workers)]
        self._restarts: deque[float] = deque()
        self._fetch_thread = threading.Thread(
            target=self._fetch_main, name=f"joobq-fetch-{name}", daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._fetch_thread.start()
        self._watchdog.start()
        for slot in self._slots:
            self._start_slot(slot)

    def wake(self) -> None:
        """New jobs may be waiting (a NOTIFY arrived): claim now instead of at the next poll."""
        self._wake.set()

    def request_cancel(self, jid: UUID) -> None:
        """Hand a cancel request to a running job: its flag for sync code, task cancellation
        for async code."""
        with self._lock:
            run = self._runs.get(jid)
        if run is None:
            return
        run.job._request_cancel()
        if run.future is not None:
            run.future.cancel()

    def begin_shutdown(self) -> None:
        """Stop claiming and hand back the claimed jobs that have not started."""
        self._stopping.set()
        self._wake.set()
        self._fetch_thread.join()
        with self._lock:
            unstarted = [record.jid for record in self._buffer]
            self._buffer.clear()
            self._work.notify_all()
            self._give.hold_unreleased(unstarted)
        self._settle()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job of this queue runs (timed-out threads included); False if some
        still do after `timeout`."""
        with self._runs_changed:
            return self._runs_changed.wait_for(
                lambda: not self._runs and not self._overrunning and not self._starting, timeout
            )

    def finish(self) -> None:
        """Stop the watchdog, even if a stuck sync job still runs, timed out or not: its
        lease is no longer renewed once the worker stops, and it is left to lease rescue.
        Claimed jobs still to be given back get a last try."""
        self._watchdog.stop(timeout=1)
        if self._settle_due():
            self._settle()
            self._give.left_to_rescue()

    # -- the core's questions ----------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _held_locked(self) -> set[UUID]:
        held = {r.jid for r in self._buffer} | set(self._runs) | set(self._overrunning)
        return held | self._starting | self._finishing

    def _unstarted_locked(self) -> set[UUID]:
        return {r.jid for r in self._buffer} | self._starting

    def _holding_locked(self) -> bool:
        return bool(
            self._buffer or self._starting or self._runs or self._overrunning or self._finishing
        )

    # -- the fetcher's thread ----------------------------------------------------------------

    def _fetch_main(self) -> None:
        drive(self._fetcher.run(), self._do)
        # What is left to give back, begin_shutdown gives back once this thread has ended.

    def claim_size(self) -> int:
        """How many jobs to claim now (see ClaimSizer), from the runs that have turned long."""
        with self._lock:
            self._sizer.count_long((r.started for r in self._runs.values()), time.monotonic())
            return self._claim_size_locked()

    def _claim_size_locked(self) -> int:
        return self._sizer.size(len(self._buffer) + len(self._starting) + len(self._runs))

    def wait_time(self) -> float:
        return self._sizer.wait_within(self.settings.poll_interval, self._buffer)

    def hold(self, records: list[JobRecord]) -> bool:
        """Buffer the claimed records (the slot that takes one finds out whether it can run
        here, see _take), or, if shutdown began meanwhile, hold them to release."""
        with self._lock:
            if not self._stopping.is_set():
                self._buffer.extend(records)
                self._work.notify(len(records))
                return False
        if records:  # claimed as shutdown began: hand them straight back
            self._give.hold_unreleased([record.jid for record in records])
        return bool(records)

    def hand_on(self) -> int:
        """Hold to release the buffered jobs that would wait behind a long run: those beyond
        what may wait here (ClaimSizer.keep), the last claimed first; another worker can take
        them at once. A job an idle slot is about to take (its thread was notified, and not
        scheduled yet) waits behind nothing: as many jobs as idle slots always stay."""
        with self._lock:
            starts = (r.started for r in self._runs.values())
            idle_slots = max(0, self.workers - len(self._runs))
            keep = self._sizer.keep(starts, time.monotonic(), idle_slots=idle_slots)
            if keep is None or len(self._buffer) <= keep:
                return 0
            jids = [self._buffer.pop().jid for _ in range(len(self._buffer) - keep)]
            self._give.hold_unreleased(jids)  # still held (renewed) until the release is written
        return len(jids)

    def _settle(self) -> None:
        """At shutdown: give back all that is still to give back (see Fetcher.settle)."""
        drive(self._fetcher.settle(tries=SHUTDOWN_TRIES), self._do)

    def _release(self, jids: list[UUID]) -> None:
        """Give back claimed jobs that will not start here (shutdown began); if the database
        is away, they stay held (renewed) and finish() tries again."""
        drive(self._fetcher.release(jids), self._do)

    # -- working -----------------------------------------------------------------------------

    def _start_slot(self, slot: Slot) -> None:
        slot.retired = False
        slot.thread = threading.Thread(
            target=self._slot_main,
            args=(slot,),
            name=f"joobq-{self.name}-{slot.index}",
            daemon=True,
        )
        slot.thread.start()

    def _slot_main(self, slot: Slot) -> None:
        me = threading.current_thread()
        try:
            while slot.thread is me and not slot.retired:
                run = self._take(slot)
                if run is None:
                    return
                self._execute(run)
        except JobTimeout:
            return  # a timeout that landed just after its job ended; the slot has a new thread
        except BaseException as exc:
            run = slot.run
            if run is not None and self._finish(run):
                try:
                    failure = self._failure(run.record, run.job, exc)
                    self.acker.fail(failure)  # the job it held is not stranded
                finally:
                    self._handed(run)
            if self._stopping.is_set() or slot.thread is not me:
                return
            logger.exception("worker thread %s of queue %r crashed; restarting", me.name, self.name)
            self._restart(slot)

    def _restart(self, slot: Slot) -> None:
        """Restart a crashed worker thread, at most restart_limit times a minute."""
        now = time.monotonic()
        while self._restarts and self._restarts[0] < now - 60:
            self._restarts.popleft()
        if len(self._restarts) >= self.settings.restart_limit:
            logger.error(
                "queue %r: too many worker restarts; cooling down %.1fs",
                self.name,
                self.settings.restart_cooldown,
            )
            if self._stopping.wait(self.settings.restart_cooldown):
                return
        self._restarts.append(time.monotonic())
        self._start_slot(slot)

    def _take(self, slot: Slot) -> Run | None:
        """The next buffered job this slot runs, or None at shutdown. Its Job is built here,
        in the slot's thread (off the fetcher's critical path), while the jid stays held
        (`_starting`); a job this process cannot run is held to be handed back instead."""
        while True:
            with self._lock:
                while not self._buffer and not self._stopping.is_set():
                    self._work.wait()
                if self._stopping.is_set() or not self._buffer:
                    return None  # shutting down: buffered jobs are released, not started
                record = self._buffer.popleft()
                self._starting.add(record.jid)
            try:
                runnable, unrunnable = decode_claimed([record])  # a user's from_args: no lock
            except BaseException:
                with self._lock:  # cannot happen (decode_claimed catches), but never strand it
                    self._starting.discard(record.jid)
                    self._give.hold_unreleased([record.jid])
                self._wake.set()
                raise
            with self._lock:
                self._starting.discard(record.jid)
                if runnable and not self._stopping.is_set():
                    return self._start_locked(slot, record, runnable[0][1])
                # In one step with leaving `_starting`: a release of unseen claims never
                # sees the job unheld.
                if unrunnable:
                    self._give.hold_unrunnable(unrunnable)
                else:  # shutdown began while it was being built: released, not started
                    self._give.hold_unreleased([record.jid])
                if self._stopping.is_set():
                    self._runs_changed.notify_all()
            self._wake.set()  # the fetcher's next pass gives it back (finish(), at shutdown)

    def _start_locked(self, slot: Slot, record: JobRecord, job: Job) -> Run:
        """Start `record`'s run in `slot` (the lock is held)."""
        klass = type(job)
        timeout = klass.timeout.total_seconds() if klass.timeout else self.settings.timeout
        run = Run(
            record=record,
            job=job,
            slot=slot,
            deadline=None if timeout is None else time.monotonic() + timeout,
            is_async=is_async(klass),
        )
        self._runs[record.jid] = run
        slot.run = run
        if run.deadline is not None and not run.is_async:
            self._watchdog.deadlines.notify()  # the watchdog learns the new deadline
        return run

    def _execute(self, run: Run) -> None:
        record, job = run.record, run.job
        context = JobContext(record=record, worker_id=self.worker_id, queue=self.name)
        failure: BaseException | None = None
        try:
            chain(self.middlewares, job, context, lambda: self._perform(run))()
        except ShutdownBeforeStart:
            finished = self._finish(run)
            try:
                self._release([record.jid])
            finally:
                if finished:
                    self._handed(run)
            return
        except BaseException as exc:  # SystemExit or KeyboardInterrupt from a job fail the job
            failure = exc
        if not self._finish(run):
            return  # the watchdog timed it out; it reports the failure once this thread ends
        try:
            self._report(run, failure)
        finally:
            self._handed(run)

    def _report(self, run: Run, failure: BaseException | None) -> None:
        """Hand the outcome of a finished run to the acker (a cancelled run ends dead)."""
        cancelled = failure is not None and is_cancellation(failure) and run.job.cancel_requested
        self._acknowledge(run.record, run.job, failure, cancelled=cancelled)

    def _perform(self, run: Run) -> Any:
        return run.perform(self.async_loop)

    def _finish(self, run: Run) -> bool:
        """Mark the run over and its slot free; False when the watchdog already timed it out.
        On True the job stays held (`_finishing`) until the caller calls _handed."""
        with self._lock:
            if run.state != "running":
                return False
            run.state = "done"
            self._runs.pop(run.record.jid, None)
            self._finishing.add(run.record.jid)
            self._sizer.ahead.ran(time.monotonic() - run.started)
            if self._stopping.is_set():
                self._runs_changed.notify_all()
            # A slot is free: claim for it now rather than at the next poll, but wake the
            # fetcher only when it would claim (while draining a backlog, it waits for a
            # good share of a batch), so that a stream of short jobs does not spin it. (The
            # wake-up is checked first: during a drain it is often set already.)
            claim = not self._wake.is_set() and self._claim_size_locked() > 0
        if claim:
            self._wake.set()
        return True

    def _handed(self, run: Run) -> None:
        """The finished run's outcome is with the acker (or it was released): the acker holds
        it from now on."""
        with self._lock:
            self._finishing.discard(run.record.jid)

    # -- sync timeouts (thread_watchdog.py) --------------------------------------------------

    def _free_slot(self, slot: Slot) -> None:
        """A run in `slot` timed out: a fresh thread serves the slot, unless shutdown began."""
        if not self._stopping.is_set():
            self._start_slot(slot)
            self._wake.set()

    def _fail_timed_out(self, run: Run, exc: BaseException, cancelled: bool) -> None:
        self.acker.fail(self._failure(run.record, run.job, exc, cancelled=cancelled))
