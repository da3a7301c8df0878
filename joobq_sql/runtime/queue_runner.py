"""Runs one queue in this process: a fetcher that claims jobs in batches, `workers` threads
that build their Job objects and perform them (the fetcher's loop is a drain's critical path,
so it only claims and buffers), and a watchdog that enforces sync timeouts.

Concurrency: exactly `workers` worker threads take jobs, so at most `workers` jobs of the queue
run at once. The fetcher claims for the free slots, at most `worker_batch_size` per claim, and,
while the queue's recent runs are short (a tenth of `claim_ahead`, 5 ms, or less), ahead of
them (see claim_ahead.py): jobs of a few microseconds are then claimed a batch per round trip,
however few the slots; longer jobs are claimed one per free slot. A claimed job does not wait
behind a long run: once a run outlasts its estimate by `claim_ahead`, the jobs waiting behind it
beyond what the other slots are expected to start within that time are handed back unchanged
(release_jobs: no retry spent), for another worker. (JoobQ prefetched a whole batch per worker,
stranding work; a fixed `prefetch` is still there, opt-in.)
Claimed jobs not yet started (the moment between claim and start, or a job waiting for its
queue's throttle) are released at once on shutdown.

Drain-and-exit (`app.run(until_empty=True)`) asks each runner `drained()`: a claim sent while
it held nothing came back empty (or the queue is paused), and it still holds nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ..errors import NothingSentError
from ..job import Job, JobCancelled
from ..settings import Settings
from ..store.base import Store, decode_claimed
from ..store.records import Failure, JobRecord
from .acker import Acker
from .async_loop import AsyncLoop
from .claim_ahead import ClaimAhead
from .error_monitor import ErrorMonitor
from .failures import failure_of_run
from .give_backs import SHUTDOWN_TRIES, GiveBacks, retry_delay
from .middleware import JobContext, Middleware, ShutdownBeforeStart, ThrottleMiddleware, chain
from .throttle import Throttle
from .timeouts import JobTimeout, raise_in_thread

logger = logging.getLogger("joobq_sql.worker")


@dataclass
class _Slot:
    """One of the queue's `workers` places to run a job, served by one thread at a time."""

    index: int
    thread: threading.Thread | None = None
    retired: bool = False  # its thread overran a timeout; a fresh thread serves the slot now
    run: _Run | None = None  # the run it is on, so a crash can still report it


@dataclass
class _Run:
    record: JobRecord
    job: Job
    slot: _Slot
    deadline: float | None
    is_async: bool
    state: str = "running"  # -> "done" (the worker reports) or "timed_out" (the watchdog does)
    started: float = field(default_factory=time.monotonic)
    future: concurrent.futures.Future[Any] | None = None  # an async job's task, to cancel it
    thread: threading.Thread | None = None  # a timed-out sync run's thread, watched until it ends


class QueueRunner:
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
        self.name = name
        self.workers = workers
        self.store = store
        self.worker_id = worker_id
        self.settings = settings
        self.acker = acker
        self.async_loop = async_loop
        self.errors = errors
        self._stopping = threading.Event()
        self._finished = False
        self._paused = False
        self.middlewares: list[Middleware] = list(middlewares)
        if throttle is not None:
            self.middlewares.insert(0, ThrottleMiddleware(throttle, self._stopping))
        self._lock = threading.Lock()
        # Three conditions on one lock, so each change wakes only the threads it concerns:
        # a worker per buffered job (not all of them), the watchdog on a new deadline, and
        # shutdown's wait_idle when a run ends.
        self._work = threading.Condition(self._lock)
        self._deadlines = threading.Condition(self._lock)
        self._runs_changed = threading.Condition(self._lock)
        self._backlog = False  # the last claim came back full: more jobs are waiting
        # A claim sent while this runner held nothing came back empty, and nothing was claimed
        # since (see drained()).
        self._empty = False
        self._ahead = ClaimAhead(
            budget=settings.claim_ahead, workers=workers, batch=settings.worker_batch_size
        )
        # Claimed records waiting for a slot. Their Job objects are built by the slot that
        # takes them (see _take), not by the fetcher: a drain's fetcher is its critical path.
        self._buffer: deque[JobRecord] = deque()
        # Taken from the buffer by a slot that is building its Job: still held.
        self._starting: set[UUID] = set()
        self._runs: dict[UUID, _Run] = {}
        # Sync runs past their timeout whose thread still runs: still held (their leases are
        # renewed, their retry not yet claimable), but no longer in a slot.
        self._overrunning: dict[UUID, _Run] = {}
        # Runs over and out of `_runs` whose outcome is not yet with the acker (or released):
        # still held, so that a release of unseen claims (see give_backs.py) never takes them.
        self._finishing: set[UUID] = set()
        # Claimed jobs held only to be given back: unrunnable ones, failed releases.
        self._give = GiveBacks(
            logger, queue=name, grace=settings.unrunnable_grace, worker_id=worker_id
        )
        self._wake = threading.Event()
        self._slots = [_Slot(i) for i in range(workers)]
        self._restarts: deque[float] = deque()
        self._fetcher = threading.Thread(
            target=self._fetch_loop, name=f"joobq-fetch-{name}", daemon=True
        )
        self._watchdog = threading.Thread(
            target=self._watch_loop, name=f"joobq-watchdog-{name}", daemon=True
        )
        self.counters = {
            "passes": 0,  # fetcher wake-ups: by poll, NOTIFY or a freed slot
            "claims": 0,  # claim round trips
            "claimed": 0,
            "handed_on": 0,  # buffered jobs released because a run turned out long
            "succeeded": 0,
            "failed": 0,
            "timed_out": 0,
            "released": 0,
            "handed_back": 0,  # claimed jobs this worker cannot run, handed back
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._fetcher.start()
        self._watchdog.start()
        for slot in self._slots:
            self._start_slot(slot)

    def wake(self) -> None:
        """New jobs may be waiting (a NOTIFY arrived): claim now instead of at the next poll."""
        self._wake.set()

    def set_paused(self, paused: bool) -> None:
        """A paused queue starts no new job; on resume it claims at once."""
        was_paused, self._paused = self._paused, paused
        if was_paused and not paused:
            self._wake.set()

    def running_jids(self) -> list[UUID]:
        with self._lock:
            return list(self._runs)

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

    def held_jids(self) -> set[UUID]:
        with self._lock:
            held = {r.jid for r in self._buffer} | set(self._runs) | set(self._overrunning)
            return held | self._starting | self._finishing | self._give.jids()

    def buffered_jids(self) -> set[UUID]:
        """The held jobs not started yet: claimed and waiting in the buffer for a slot, or
        waiting to be given back (unrunnable here, or a release that failed)."""
        with self._lock:
            return {r.jid for r in self._buffer} | self._starting | self._give.jids()

    def begin_shutdown(self) -> None:
        """Stop claiming and hand back the claimed jobs that have not started."""
        self._stopping.set()
        self._wake.set()
        self._fetcher.join()
        with self._lock:
            unstarted = [record.jid for record in self._buffer]
            self._buffer.clear()
            self._work.notify_all()
            self._give.hold_unreleased(unstarted)
        self._settle(tries=SHUTDOWN_TRIES)

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
        with self._lock:
            self._finished = True
            self._deadlines.notify_all()
        self._watchdog.join(timeout=1)
        if self._give.unseen_claim or self._give.jids():
            self._settle(tries=SHUTDOWN_TRIES)
            self._give.left_to_rescue()

    # -- fetching ----------------------------------------------------------------------------

    def drained(self) -> bool:
        """True when a claim sent while this runner held nothing found no runnable job of its
        queue (or the queue is paused), and it holds nothing still: nothing buffered, running,
        finishing or to be given back."""
        with self._lock:
            return self._empty and self._holds_nothing_locked()

    def _holds_nothing_locked(self) -> bool:
        return not (
            self._buffer
            or self._starting
            or self._runs
            or self._overrunning
            or self._finishing
            or self._give.unseen_claim
            or self._give.jids()
        )

    def _claim_size(self) -> int:
        """How many jobs to claim now: for free slots, plus what ClaimAhead allows while runs
        are short. While a backlog is being drained, it waits until a good share of a batch
        is free, so one claim serves many slots instead of one round trip per finished job.
        With no backlog, any free slot claims at once (low pickup latency)."""
        if self._paused:
            return 0
        with self._lock:
            self._ahead.count_long((r.started for r in self._runs.values()), time.monotonic())
            return self._claim_size_locked()

    def _claim_size_locked(self) -> int:
        batch = self.settings.worker_batch_size
        ahead = self._ahead.allowed()
        capacity = self.workers + self.settings.prefetch + ahead
        free = capacity - len(self._buffer) - len(self._starting) - len(self._runs)
        if free <= 0:
            return 0
        if self._backlog:
            # Claiming ahead: claim once half of what may be buffered is free (full batches,
            # the next one claimed while the last is still being worked through); else once
            # a quarter of the slots are.
            need = min(batch, ahead // 2) if ahead else min(batch, capacity) // 4
            if free < max(1, need):
                return 0
        return min(batch, free)

    def _hand_on_locked(self, now: float) -> list[UUID]:
        """The buffered jobs to hand back now: those beyond what may wait here once a run has
        turned out long (ClaimAhead.keep), the last claimed first. A job an idle slot is about
        to take (its thread was notified, and not scheduled yet) waits behind nothing: as many
        jobs as idle slots always stay."""
        starts = (r.started for r in self._runs.values())
        keep = self._ahead.keep(starts, now, prefetch=self.settings.prefetch)
        if keep is None:
            return []
        keep += max(0, self.workers - len(self._runs))
        if len(self._buffer) <= keep:
            return []
        jids = [self._buffer.pop().jid for _ in range(len(self._buffer) - keep)]
        self._give.hold_unreleased(jids)  # still held (renewed) until the release is written
        return jids

    def _hand_on(self) -> None:
        """Hand back the buffered jobs that would wait behind a long run (see _hand_on_locked);
        another worker can take them at once."""
        with self._lock:
            jids = self._hand_on_locked(time.monotonic())
        if jids:
            self.counters["handed_on"] += len(jids)
            logger.debug("queue %r: a run is long; handing back %d jobs", self.name, len(jids))
            self._give_back(force=True)

    def _fetch_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self.counters["passes"] += 1
            try:
                self._give_back()  # what an earlier pass could not; never blocks a claim
                if self._give.unseen_claim:
                    self._release_unseen()  # before claiming again: raises until it succeeds
                self._hand_on()
                with self._lock:
                    idle = self._holds_nothing_locked()
                want = self._claim_size()
                more = self._claim(want, idle=idle) if want else False
                if self._paused and idle:
                    self._empty = True
                failures = 0
            except Exception as exc:
                failures += 1
                delay = retry_delay(failures)
                logger.warning(
                    "claiming from %r failed (%s); retrying in %.2fs", self.name, exc, delay
                )
                self._stopping.wait(delay)
                continue
            if more:
                continue  # the queue may hold more: claim again before waiting
            self._wake.wait(self._ahead.check_within(self.settings.poll_interval, self._buffer))
            self._wake.clear()
        # What is left to give back, begin_shutdown gives back once this thread has ended.

    def _claim(self, want: int, *, idle: bool = False) -> bool:
        """Claim up to `want` jobs and hold every one; True if the claim came back full.
        `idle`: this runner held nothing when it decided to claim (see drained()).

        Until each claimed record is held (buffered, or waiting to be given back), the claim
        counts as unseen: if claim_jobs raises (its COMMIT may still have happened) or anything
        fails before its records are held, the next pass releases what it may have claimed."""
        self._give.unseen_claim = True
        try:
            records = self.store.claim_jobs(
                self.name, self.worker_id, want, lease=self.settings.lease
            )
        except NothingSentError:  # no connection: nothing was claimed
            self._give.unseen_claim = False
            raise
        self._hold(records)
        self._give.unseen_claim = False
        self.counters["claims"] += 1
        self.counters["claimed"] += len(records)
        self._empty = idle and not records
        self._backlog = len(records) == want
        return self._backlog

    def _hold(self, records: list[JobRecord]) -> None:
        """Buffer the claimed records (the slot that takes one finds out whether it can run
        here, see _take), or, if shutdown began meanwhile, hold them to release."""
        with self._lock:
            if not self._stopping.is_set():
                self._buffer.extend(records)
                self._work.notify(len(records))
                return
        if records:  # claimed as shutdown began: hand them straight back
            self._give.hold_unreleased([record.jid for record in records])
            self._give_back()

    def _release_unseen(self) -> None:
        """Release every running job of this worker in this queue that it does not hold: what
        an unseen claim took. Its held jobs are read before the acker's (a finished run moves
        from the one to the other), so no job that ran here is released."""
        keep = self.held_jids() | self.acker.pending_jids()
        released = self.store.release_jobs(self.worker_id, queue=self.name, keep=sorted(keep))
        self._give.unseen_claim = False
        self.counters["released"] += len(released)
        self._give.report_unseen_released(released)

    def _give_back(self, *, force: bool = False) -> bool:
        """One try at handing back the unrunnable jobs held and releasing the unreleased ones
        (unless a failure's backoff still runs and not `force`); True when it worked."""
        hand_backs, unreleased = self._give.pending(force=force)
        if not hand_backs and not unreleased:
            return True
        try:
            if hand_backs:
                grace = self.settings.unrunnable_grace
                changed = self.store.hand_back_jobs(hand_backs, grace=grace)
                self._give.handed_back(hand_backs)  # absent from `changed`: no longer ours
                self.counters["handed_back"] += len(changed)
            if unreleased:
                released = self.store.release_jobs(self.worker_id, unreleased)
                self._give.released(unreleased)
                self.counters["released"] += len(released)
        except Exception as exc:
            self._give.failed("giving back", len(hand_backs) + len(unreleased), exc)
            return False
        self._give.succeeded()
        return True

    def _settle(self, *, tries: int) -> None:
        """At shutdown: give back all that is still to give back, up to `tries` times each."""
        for attempt in range(1, tries + 1):
            if not self._give.unseen_claim:
                break
            try:
                self._release_unseen()
            except Exception as exc:
                logger.warning("queue %r: releasing an unseen claim failed (%s)", self.name, exc)
                if attempt < tries:
                    time.sleep(retry_delay(attempt))
        for attempt in range(1, tries + 1):
            if self._give_back(force=True):
                break
            if attempt < tries:
                time.sleep(retry_delay(attempt))

    def _release(self, jids: list[UUID]) -> None:
        """Give back claimed jobs that will not start here (shutdown began); if the database
        is away, they stay held (renewed) and finish() tries again."""
        if jids:
            self._give.hold_unreleased(jids)
            self._give_back(force=True)

    # -- working -----------------------------------------------------------------------------

    def _start_slot(self, slot: _Slot) -> None:
        slot.retired = False
        slot.thread = threading.Thread(
            target=self._slot_main,
            args=(slot,),
            name=f"joobq-{self.name}-{slot.index}",
            daemon=True,
        )
        slot.thread.start()

    def _slot_main(self, slot: _Slot) -> None:
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
                    self.acker.fail(self._failure(run, exc))  # the job it held is not stranded
                finally:
                    self._handed(run)
            if self._stopping.is_set() or slot.thread is not me:
                return
            logger.exception("worker thread %s of queue %r crashed; restarting", me.name, self.name)
            self._restart(slot)

    def _restart(self, slot: _Slot) -> None:
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

    def _take(self, slot: _Slot) -> _Run | None:
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

    def _start_locked(self, slot: _Slot, record: JobRecord, job: Job) -> _Run:
        """Start `record`'s run in `slot` (the lock is held)."""
        klass = type(job)
        timeout = klass.timeout.total_seconds() if klass.timeout else self.settings.timeout
        run = _Run(
            record=record,
            job=job,
            slot=slot,
            deadline=None if timeout is None else time.monotonic() + timeout,
            is_async=_is_async(klass),
        )
        self._runs[record.jid] = run
        slot.run = run
        if run.deadline is not None and not run.is_async:
            self._deadlines.notify()  # the watchdog learns the new deadline
        return run

    def _execute(self, run: _Run) -> None:
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

    def _report(self, run: _Run, failure: BaseException | None) -> None:
        """Hand the outcome of a finished run to the acker."""
        if failure is not None and _is_cancellation(failure) and run.job.cancel_requested:
            self.counters["failed"] += 1
            self.acker.fail(self._failure(run, failure, cancelled=True))
            return
        if failure is None:
            self.counters["succeeded"] += 1
            self.acker.complete(run.record.completion)
        else:
            self.counters["failed"] += 1
            self.acker.fail(self._failure(run, failure))

    def _perform(self, run: _Run) -> Any:
        result = run.job.perform()
        if inspect.isawaitable(result):
            remaining = None if run.deadline is None else max(run.deadline - time.monotonic(), 0)
            run.future = self.async_loop.submit(_await(result))
            if run.job.cancel_requested:  # asked before the task existed
                run.future.cancel()
            return self.async_loop.wait(run.future, remaining)
        return result

    def _finish(self, run: _Run) -> bool:
        """Mark the run over and its slot free; False when the watchdog already timed it out.
        On True the job stays held (`_finishing`) until the caller calls _handed."""
        with self._lock:
            if run.state != "running":
                return False
            run.state = "done"
            self._runs.pop(run.record.jid, None)
            self._finishing.add(run.record.jid)
            self._ahead.ran(time.monotonic() - run.started)
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

    def _handed(self, run: _Run) -> None:
        """The finished run's outcome is with the acker (or it was released): the acker holds
        it from now on."""
        with self._lock:
            self._finishing.discard(run.record.jid)

    def _failure(self, run: _Run, exc: BaseException, *, cancelled: bool = False) -> Failure:
        return failure_of_run(
            run.record,
            type(run.job),
            exc,
            worker_id=self.worker_id,
            settings=self.settings,
            errors=self.errors,
            cancelled=cancelled,
        )

    # -- sync timeouts -----------------------------------------------------------------------

    def _watch_loop(self) -> None:
        """Time out overdue sync runs, and report each one's failure once its thread has
        ended: until then its retry must not be claimable (see timeouts.py)."""
        while True:
            with self._lock:
                if self._finished or (
                    self._stopping.is_set() and not self._runs and not self._overrunning
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
                    self._overrunning[run.record.jid] = run
                ended = [
                    r
                    for r in self._overrunning.values()
                    if r.thread is None or not r.thread.is_alive()
                ]
                if not overdue and not ended:
                    deadlines = [
                        r.deadline
                        for r in self._runs.values()
                        if r.deadline is not None and not r.is_async
                    ]
                    wait = min(deadlines) - now if deadlines else 1.0
                    if self._overrunning:
                        wait = min(wait, 0.05)  # a thread's end is polled, not signalled
                    self._deadlines.wait(max(min(wait, 1.0), 0.001))
                    continue
            for run in overdue:
                self._time_out(run)
            for run in ended:
                self._report_timed_out(run)

    def _time_out(self, run: _Run) -> None:
        self.counters["timed_out"] += 1
        if run.thread is not None:
            raise_in_thread(run.thread, JobTimeout)
        logger.warning(
            "job %s (%s) attempt %d ran past its timeout of %gs: JobTimeout raised in its "
            "thread; it is retried (or dead) once that thread has ended",
            run.record.jid,
            run.record.job_type,
            run.record.attempt,
            self._timeout_of(run),
        )
        if not self._stopping.is_set():
            self._start_slot(run.slot)  # the slot is free again, with a fresh thread
            self._wake.set()

    def _report_timed_out(self, run: _Run) -> None:
        """The timed-out run's thread has ended: fail it now (a cancel asked meanwhile wins)."""
        exc = JobTimeout(f"the job did not finish within {self._timeout_of(run):g}s")
        cancelled = run.job.cancel_requested
        self.acker.fail(self._failure(run, exc, cancelled=cancelled))  # held by the acker now
        with self._lock:
            self._overrunning.pop(run.record.jid, None)
            self._runs_changed.notify_all()

    @staticmethod
    def _timeout_of(run: _Run) -> float:
        return run.deadline - run.started if run.deadline is not None else 0.0


_async_classes: dict[type, bool] = {}


def _is_async(klass: type[Job]) -> bool:
    """Whether the class's perform is a coroutine function (looked up once per class)."""
    found = _async_classes.get(klass)
    if found is None:
        found = _async_classes[klass] = inspect.iscoroutinefunction(klass.perform)
    return found


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _is_cancellation(exc: BaseException) -> bool:
    """How a cancelled run ends: JobCancelled from check_cancelled, or a cancelled task."""
    return isinstance(
        exc, JobCancelled | asyncio.CancelledError | concurrent.futures.CancelledError
    )
