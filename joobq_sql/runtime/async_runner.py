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

from ..job import Job, JobCancelled
from ..settings import Settings
from ..store.base import Store, decode_claimed
from ..store.postgres.async_store import AsyncStore, AsyncStoreAdapter
from ..store.records import JobRecord
from .acker import Acker
from .async_loop import AsyncLoop
from .error_monitor import ErrorMonitor
from .fetch_steps import Backoff, ClaimJobs, ReleaseJobs, Sleep, Step, Wait, drive_async
from .fetcher import ClaimSizer
from .give_backs import SHUTDOWN_TRIES
from .middleware import JobContext, Middleware, ShutdownBeforeStart, chain
from .runner_core import RunnerCore
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


class AsyncQueueRunner(RunnerCore[_Run]):
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
        super().__init__(
            name=name,
            workers=workers,
            worker_id=worker_id,
            settings=settings,
            middlewares=middlewares,
            acker=acker,
            async_loop=async_loop,
            errors=errors,
            sizer=ClaimSizer.of(settings, workers, ahead=False),  # only for free slots
        )
        self.throttle = throttle
        self._owns_store = async_store is None
        # Else its own small pool on the worker's loop: one fetch loop and the releases.
        self.store: AsyncStore = (
            async_store or store.async_twin(pool_size=2) or AsyncStoreAdapter(store)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fetch_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._changed = threading.Condition(self._lock)  # runs were added or removed

    # -- the interface Worker uses (called from its threads) ---------------------------------

    def start(self) -> None:
        self._loop = self.async_loop.run(_running_loop(), None)
        self.async_loop.run(self._start_fetcher(), None)

    def wake(self) -> None:
        """New jobs may be waiting (a NOTIFY arrived): claim now instead of at the next poll."""
        self._soon(self._wake.set)

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

    # -- the core's questions ----------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _held_locked(self) -> set[UUID]:
        return set(self._runs)

    def _unstarted_locked(self) -> set[UUID]:
        return {jid for jid, run in self._runs.items() if not run.started}

    def _holding_locked(self) -> bool:
        return bool(self._runs)

    def claim_size(self) -> int:
        return self._sizer.size(len(self._runs))

    def hold(self, records: list[JobRecord]) -> bool:
        """Start a task for each claimed record this process can run; hold the others to give
        back (all of them, if shutdown began meanwhile)."""
        runnable, unrunnable = decode_claimed(records)
        self._give.hold_unrunnable(unrunnable)
        if self._stopping:  # claimed as shutdown began: hand them straight back
            self._give.hold_unreleased([record.jid for record, _ in runnable])
            runnable = []
        for record, job in runnable:
            self._launch(record, job)
        return len(runnable) < len(records)

    # -- on the loop -------------------------------------------------------------------------

    def _soon(self, callback: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already stopped
                loop.call_soon_threadsafe(callback, *args)

    async def _start_fetcher(self) -> None:
        self._fetch_task = asyncio.create_task(
            drive_async(self._fetcher.run(), self._do), name=f"joobq-fetch-{self.name}"
        )

    async def _do(self, step: Step) -> Any:
        """Carry out one of the fetcher's steps on the loop."""
        if isinstance(step, Wait | Backoff):
            await self._idle(step.seconds)
            return None
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        store = self.store
        if isinstance(step, ClaimJobs):
            return await store.claim_jobs(step.queue, step.worker_id, step.limit, lease=step.lease)
        if isinstance(step, ReleaseJobs):
            return await store.release_jobs(
                step.worker_id, step.jids, queue=step.queue, keep=step.keep
            )
        return await store.hand_back_jobs(step.hand_backs, grace=step.grace)

    async def _begin_shutdown(self) -> None:
        self._stopping = True
        self._stop.set()
        self._wake.set()
        if self._fetch_task is not None:
            await asyncio.wait([self._fetch_task])
        unstarted = [r.task for r in self._runs.values() if not r.started and r.task is not None]
        if unstarted:
            await asyncio.wait(unstarted)  # each one sees the stop and releases itself
        await self._settle()

    async def _finish(self) -> None:
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        if self._settle_due():
            await self._settle()
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

    async def _settle(self) -> None:
        """At shutdown: give back all that is still to give back (see Fetcher.settle)."""
        await drive_async(self._fetcher.settle(tries=SHUTDOWN_TRIES), self._do)

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
            self._report(run, failure)
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

    def _report(self, run: _Run, failure: BaseException | None) -> None:
        """Hand the outcome of a finished run to the acker (a cancelled run ends dead)."""
        cancelled = run.job.cancel_requested and isinstance(
            failure, JobCancelled | asyncio.CancelledError
        )
        self._acknowledge(run.record, run.job, failure, cancelled=cancelled)

    async def _release(self, jids: list[UUID]) -> None:
        """Give back claimed jobs that will not start here (shutdown began); if the database
        is away, they stay held (renewed) and shutdown tries again."""
        await drive_async(self._fetcher.release(jids), self._do)


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
