"""Runs one queue's ``async def perform`` jobs as tasks on one event loop: no thread per job.

Select it per queue: ``app.queue("fetch", workers=200, jobs=[Fetch], mode="async")``. Up to
`workers` jobs of the queue then run at once as asyncio tasks on the worker's event loop (the
one AsyncLoop thread that also serves the async jobs of threaded queues), so a queue of many
I/O-bound jobs costs no thread per job.

It offers Worker the interface of QueueRunner (start, wake, held_jids, running_jids,
request_cancel, set_paused, begin_shutdown, wait_idle, finish, counters) and keeps its
behaviour:

- **Claims** go through an AsyncStore on the loop: an AsyncPostgresStore of its own on the
  worker's database when the store is a PostgresStore (the claim never blocks the loop), else
  the sync store through AsyncStoreAdapter. It claims only for free slots, at most
  `worker_batch_size` at a time, and never while the queue is paused.
- **Acknowledgements, leases, pauses, cancel requests and maintenance** are the Worker's shared
  parts, the same as for threaded queues: the Acker writes fenced batches, the Heartbeat renews
  the leases of every job this runner holds, the ControlWatcher hands over pauses and cancels.
- **Timeouts**: ``asyncio.timeout`` cancels the job at its deadline; it fails with JobTimeout
  through the retry path once its task has ended (a job that catches the cancellation and goes
  on keeps its slot and its lease until it returns).
- **Cancel**: a cancel request cancels the job's task; the job ends dead, reason "cancelled".
- **Shutdown**: stop claiming, release jobs that have not started (waiting for the queue's
  throttle), let running ones finish within the grace period; then they are cancelled and fail
  through the retry path, as threaded mode's async jobs do.

A job class with a plain ``def perform`` in an async queue (enqueued onto it by name) still runs,
in a thread of its own; at its timeout JobTimeout is raised in that thread, and the job keeps
its slot, and its lease, until the thread ends (see timeouts.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ..errors import NothingSentError
from ..job import Job, JobCancelled
from ..settings import Settings
from ..store.base import Store, decode_claimed
from ..store.postgres.async_store import AsyncStore, AsyncStoreAdapter
from ..store.records import Failure, JobRecord
from .acker import Acker
from .async_loop import AsyncLoop
from .error_monitor import ErrorMonitor
from .failures import failure_of_run
from .give_backs import SHUTDOWN_TRIES, GiveBacks, retry_delay
from .middleware import JobContext, Middleware, ShutdownBeforeStart, chain
from .throttle import Throttle
from .timeouts import JobTimeout, raise_in_thread

logger = logging.getLogger("joobq_sql.worker")

#: How long begin_shutdown waits for an in-flight claim before going on without it.
_SHUTDOWN_WAIT = 30.0


@dataclass
class _Run:
    record: JobRecord
    job: Job
    task: asyncio.Task[None] | None = None
    started: bool = False


class AsyncQueueRunner:
    """QueueRunner's counterpart for async queues (see the module docstring). It takes the
    same keyword arguments, so Worker builds either one the same way."""

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
        async_store: AsyncStore | None = None,
    ) -> None:
        self.name = name
        self.workers = workers
        self.worker_id = worker_id
        self.settings = settings
        self.acker = acker
        self.async_loop = async_loop
        self.errors = errors
        self.throttle = throttle
        self.middlewares: list[Middleware] = list(middlewares)
        self._owns_store = async_store is None
        # Else its own small pool on the worker's loop: one fetch loop and the releases.
        self.store: AsyncStore = (
            async_store or store.async_twin(pool_size=2) or AsyncStoreAdapter(store)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fetcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._paused = False
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # runs were added or removed
        self._runs: dict[UUID, _Run] = {}
        # A claim sent while this runner held nothing came back empty (see drained()).
        self._empty = False
        # Claimed jobs held only to be given back: unrunnable ones, failed releases.
        self._give = GiveBacks(
            logger, queue=name, grace=settings.unrunnable_grace, worker_id=worker_id
        )
        self.counters = {
            "passes": 0,  # fetcher wake-ups: by poll, NOTIFY or a freed slot
            "claims": 0,  # claim round trips
            "claimed": 0,
            "succeeded": 0,
            "failed": 0,
            "timed_out": 0,
            "released": 0,
            "handed_back": 0,  # claimed jobs this worker cannot run, handed back
        }

    # -- the interface Worker uses (called from its threads) ---------------------------------

    def start(self) -> None:
        self._loop = self.async_loop.run(_running_loop(), None)
        self.async_loop.run(self._start_fetcher(), None)

    def wake(self) -> None:
        """New jobs may be waiting (a NOTIFY arrived): claim now instead of at the next poll."""
        self._soon(self._wake.set)

    def set_paused(self, paused: bool) -> None:
        """A paused queue starts no new job; on resume it claims at once."""
        was_paused, self._paused = self._paused, paused
        if was_paused and not paused:
            self.wake()

    def running_jids(self) -> list[UUID]:
        with self._lock:
            return list(self._runs)

    def held_jids(self) -> set[UUID]:
        """Every job this runner has claimed and not yet handed to the acker."""
        with self._lock:
            return set(self._runs) | self._give.jids()

    def drained(self) -> bool:
        """True when a claim sent while this runner held nothing found no runnable job of its
        queue (or the queue is paused), and it holds nothing still."""
        with self._lock:
            return self._empty and self._holds_nothing_locked()

    def _holds_nothing_locked(self) -> bool:
        return not (self._runs or self._give.unseen_claim or self._give.jids())

    def buffered_jids(self) -> set[UUID]:
        """The held jobs not started yet (waiting for the queue's throttle, or to begin, or
        to be given back: unrunnable here, or a release that failed)."""
        with self._lock:
            unstarted = {jid for jid, run in self._runs.items() if not run.started}
            return unstarted | self._give.jids()

    def request_cancel(self, jid: UUID) -> None:
        """Hand a cancel request to a job: its flag, and cancellation of its task."""
        self._soon(self._cancel, jid)

    def begin_shutdown(self) -> None:
        """Stop claiming and hand back the claimed jobs that have not started."""
        if self._loop is None:
            self._stopping = True
            return
        future = asyncio.run_coroutine_threadsafe(self._begin_shutdown(), self._loop)
        try:
            future.result(_SHUTDOWN_WAIT)
        except concurrent.futures.TimeoutError:
            logger.warning("queue %r: a claim was still in flight at shutdown", self.name)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job of this queue runs; False if some still do after `timeout`."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._runs, timeout)

    def finish(self) -> None:
        """Cancel what still runs (it fails through the retry path) and close the runner's
        own connections."""
        if self._loop is None or self._loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._finish(), self._loop)
        with contextlib.suppress(Exception):
            future.result(5.0)

    # -- on the loop -------------------------------------------------------------------------

    def _soon(self, callback: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already stopped
                loop.call_soon_threadsafe(callback, *args)

    async def _start_fetcher(self) -> None:
        self._fetcher = asyncio.create_task(self._fetch_loop(), name=f"joobq-fetch-{self.name}")

    async def _begin_shutdown(self) -> None:
        self._stopping = True
        self._stop.set()
        self._wake.set()
        if self._fetcher is not None:
            await asyncio.wait([self._fetcher])
        unstarted = [r.task for r in self._runs.values() if not r.started and r.task is not None]
        if unstarted:
            await asyncio.wait(unstarted)  # each one sees the stop and releases itself
        await self._settle(tries=SHUTDOWN_TRIES)

    async def _finish(self) -> None:
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        if self._give.unseen_claim or self._give.jids():
            await self._settle(tries=SHUTDOWN_TRIES)
            self._give.left_to_rescue()
        if self._owns_store:
            with contextlib.suppress(Exception):
                await self.store.aclose()

    def _cancel(self, jid: UUID) -> None:
        run = self._runs.get(jid)
        if run is None:
            return
        run.job._request_cancel()
        if run.task is not None:
            run.task.cancel()

    def _claim_size(self) -> int:
        if self._paused:
            return 0
        free = self.workers - len(self._runs)
        return max(0, min(self.settings.worker_batch_size, free))

    async def _fetch_loop(self) -> None:
        failures = 0
        while not self._stopping:
            self.counters["passes"] += 1
            try:
                await self._give_back()  # what an earlier pass could not; never blocks a claim
                if self._give.unseen_claim:
                    await self._release_unseen()  # before claiming again: raises until it works
                with self._lock:
                    idle = self._holds_nothing_locked()
                want = self._claim_size()
                more = await self._claim(want, idle=idle) if want else False
                if self._paused and idle:
                    self._empty = True
                failures = 0
            except Exception as exc:
                failures += 1
                delay = retry_delay(failures)
                logger.warning(
                    "claiming from %r failed (%s); retrying in %.2fs", self.name, exc, delay
                )
                await self._idle(delay)
                continue
            if more:
                continue  # the queue may hold more: claim again before waiting
            await self._idle(self.settings.poll_interval)

    async def _claim(self, want: int, *, idle: bool = False) -> bool:
        """Claim up to `want` jobs and hold every one (see QueueRunner._claim: until they are
        held, the claim counts as unseen); True if the claim came back full. `idle`: this
        runner held nothing when it decided to claim (see drained())."""
        self._give.unseen_claim = True
        try:
            records = await self.store.claim_jobs(
                self.name, self.worker_id, want, lease=self.settings.lease
            )
        except NothingSentError:  # no connection: nothing was claimed
            self._give.unseen_claim = False
            raise
        runnable, unrunnable = decode_claimed(records)
        self._give.hold_unrunnable(unrunnable)
        if self._stopping:  # claimed as shutdown began: hand them straight back
            self._give.hold_unreleased([record.jid for record, _ in runnable])
            runnable = []
        for record, job in runnable:
            self._launch(record, job)
        self._give.unseen_claim = False
        self.counters["claims"] += 1
        self.counters["claimed"] += len(records)
        self._empty = idle and not records
        if len(runnable) < len(records):
            await self._give_back()
        return len(records) == want

    async def _release_unseen(self) -> None:
        """Release every running job of this worker in this queue that it does not hold: what
        an unseen claim took (held jobs are read before the acker's, as in QueueRunner)."""
        keep = self.held_jids() | self.acker.pending_jids()
        released = await self.store.release_jobs(self.worker_id, queue=self.name, keep=sorted(keep))
        self._give.unseen_claim = False
        self.counters["released"] += len(released)
        self._give.report_unseen_released(released)

    async def _give_back(self, *, force: bool = False) -> bool:
        """One try at handing back the unrunnable jobs held and releasing the unreleased ones
        (unless a failure's backoff still runs and not `force`); True when it worked."""
        hand_backs, unreleased = self._give.pending(force=force)
        if not hand_backs and not unreleased:
            return True
        try:
            if hand_backs:
                grace = self.settings.unrunnable_grace
                changed = await self.store.hand_back_jobs(hand_backs, grace=grace)
                self._give.handed_back(hand_backs)  # absent from `changed`: no longer ours
                self.counters["handed_back"] += len(changed)
            if unreleased:
                released = await self.store.release_jobs(self.worker_id, unreleased)
                self._give.released(unreleased)
                self.counters["released"] += len(released)
        except Exception as exc:
            self._give.failed("giving back", len(hand_backs) + len(unreleased), exc)
            return False
        self._give.succeeded()
        return True

    async def _settle(self, *, tries: int) -> None:
        """At shutdown: give back all that is still to give back, up to `tries` times each."""
        for attempt in range(1, tries + 1):
            if not self._give.unseen_claim:
                break
            try:
                await self._release_unseen()
            except Exception as exc:
                logger.warning("queue %r: releasing an unseen claim failed (%s)", self.name, exc)
                if attempt < tries:
                    await asyncio.sleep(retry_delay(attempt))
        for attempt in range(1, tries + 1):
            if await self._give_back(force=True):
                break
            if attempt < tries:
                await asyncio.sleep(retry_delay(attempt))

    async def _idle(self, seconds: float) -> None:
        """Wait for a wake-up (NOTIFY, a freed slot, shutdown) or `seconds`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    def _launch(self, record: JobRecord, job: Job) -> None:
        run = _Run(record, job)
        with self._changed:
            self._runs[record.jid] = run
        run.task = asyncio.create_task(self._execute(run), name=f"joobq-{self.name}-{record.jid}")

    def _forget(self, run: _Run) -> None:
        with self._changed:
            self._runs.pop(run.record.jid, None)
            self._changed.notify_all()
        self._wake.set()  # a slot is free: claim for it now rather than at the next poll

    async def _execute(self, run: _Run) -> None:
        failure: BaseException | None = None
        try:
            if self._stopping or not await self._throttle_start():
                raise ShutdownBeforeStart("the worker stopped before the job started")
            run.started = True
            await self._perform(run)
        except ShutdownBeforeStart:
            self._forget(run)
            await self._release([run.record.jid])
            return
        except asyncio.CancelledError as exc:
            if not run.started and not run.job.cancel_requested:
                self._forget(run)
                await self._release([run.record.jid])
                return
            failure = exc
        except BaseException as exc:  # SystemExit or KeyboardInterrupt from a job fail the job
            failure = exc
        try:
            self._acknowledge(run, failure)
        finally:
            self._forget(run)

    async def _throttle_start(self) -> bool:
        """Wait for the queue's throttle; False if the worker stopped first."""
        if self.throttle is None:
            return True
        while (delay := self.throttle.wait_time()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()
                    return False
        return True

    async def _perform(self, run: _Run) -> None:
        job = run.job
        klass = type(job)
        seconds = klass.timeout.total_seconds() if klass.timeout else self.settings.timeout
        context = JobContext(record=run.record, worker_id=self.worker_id, queue=self.name)
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                # Middlewares run on the loop; call_next() gives the perform coroutine, which
                # an `async def` middleware can await to see its outcome.
                result = chain(self.middlewares, job, context, lambda: _start_perform(job, scope))()
                while inspect.isawaitable(result):
                    result = await result
        except TimeoutError:
            if scope.expired():
                self.counters["timed_out"] += 1
                raise JobTimeout(f"the job did not finish within {seconds:g}s") from None
            raise

    def _acknowledge(self, run: _Run, failure: BaseException | None) -> None:
        if failure is None:
            self.counters["succeeded"] += 1
            self.acker.complete(run.record.completion)
            return
        self.counters["failed"] += 1
        cancelled = run.job.cancel_requested and isinstance(
            failure, JobCancelled | asyncio.CancelledError
        )
        self.acker.fail(self._failure(run, failure, cancelled=cancelled))

    async def _release(self, jids: list[UUID]) -> None:
        """Give back claimed jobs that will not start here (shutdown began); if the database
        is away, they stay held (renewed) and shutdown tries again."""
        if jids:
            self._give.hold_unreleased(jids)
            await self._give_back(force=True)

    def _failure(self, run: _Run, exc: BaseException, *, cancelled: bool) -> Failure:
        return failure_of_run(
            run.record,
            type(run.job),
            exc,
            worker_id=self.worker_id,
            settings=self.settings,
            errors=self.errors,
            cancelled=cancelled,
        )


def _start_perform(job: Job, scope: asyncio.Timeout) -> Any:
    """The awaitable of one run: the coroutine of an ``async def perform``, else the sync
    perform in a thread of its own (see _perform_in_thread)."""
    if inspect.iscoroutinefunction(type(job).perform):
        return job.perform()
    return _perform_in_thread(job, scope)


async def _perform_in_thread(job: Job, scope: asyncio.Timeout) -> Any:
    """Run a sync perform in a thread of its own; the run is over only when that thread is.

    At the deadline (`scope` expired) JobTimeout is raised inside the thread, as for a threaded
    queue's sync job (see timeouts.py); on any cancellation the task still waits for the thread
    to end before it ends itself, so the failure is never reported, and the retry never made
    claimable, while the first run goes on. The job keeps its slot meanwhile.
    """
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if outcome.done():
            return
        if error is None:
            outcome.set_result(result)
        else:
            outcome.set_exception(error)

    def target() -> None:
        try:
            result = job.perform()
        except BaseException as exc:  # the job's, or the JobTimeout raised in it
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    thread = threading.Thread(target=target, name=f"joobq-sync-{job.jid}", daemon=True)
    thread.start()
    try:
        return await asyncio.shield(outcome)
    except asyncio.CancelledError:
        if scope.expired():
            raise_in_thread(thread, JobTimeout)
        while not outcome.done():
            with contextlib.suppress(asyncio.CancelledError):  # shutdown: still wait for it
                await asyncio.wait([outcome])
        if not outcome.cancelled():
            outcome.exception()  # its outcome is superseded by the cancellation; mark it seen
        raise


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()
