"""What a queue runner is, whichever executor runs its jobs: one queue's claimed jobs, from the
claim (fetcher.py) to the acknowledger (acker.py) or back to the queue (give_backs.py).

Two executors build on it: the thread executor (queue_runner.py, QueueRunner: a worker thread
per slot) and the async executor (async_runner.py, AsyncQueueRunner: a task per job on the
worker's event loop). Worker drives either through the same interface: start, wake,
set_paused, running_jids, held_jids, buffered_jids, request_cancel, drained, begin_shutdown,
wait_idle, finish and counters. The core keeps what they share: the construction, the
counters, what counts as held (the heartbeat renews those leases) and as not started, the pause,
drain-and-exit's drained(), a finished run's outcome for the acker (a failure through
failures.py), and the Fetcher with its give-backs; an executor says how its jobs are held and
run, and carries out the fetcher's steps (its store calls and waits).

Drain-and-exit (`app.run(until_empty=True)`) asks each runner drained(): a claim sent while it
held nothing came back empty (or the queue is paused), and it still holds nothing.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar
from uuid import UUID

from ..job import Job
from ..settings import Settings
from ..store.records import Failure, JobRecord
from .acker import Acker
from .async_loop import AsyncLoop
from .error_monitor import ErrorMonitor
from .failures import failure_of_run
from .fetcher import ClaimSizer, Fetcher
from .give_backs import GiveBacks
from .middleware import Middleware

logger = logging.getLogger("joobq_sql.worker")

RunT = TypeVar("RunT")


class RunnerCore(ABC, Generic[RunT]):
    """The shared part of QueueRunner and AsyncQueueRunner (see the module docstring).
    `RunT` is the executor's record of a job in progress, kept in `_runs` by jid."""

    def __init__(
        self,
        *,
        name: str,
        workers: int,
        worker_id: str,
        settings: Settings,
        middlewares: Sequence[Middleware],
        acker: Acker,
        async_loop: AsyncLoop,
        errors: ErrorMonitor,
        sizer: ClaimSizer,
        hands_on: bool = False,
    ) -> None:
        self.name = name
        self.workers = workers
        self.worker_id = worker_id
        self.settings = settings
        self.acker = acker
        self.async_loop = async_loop
        self.errors = errors
        self.middlewares: list[Middleware] = list(middlewares)
        self._paused = False
        self._lock = threading.Lock()
        self._runs: dict[UUID, RunT] = {}
        # Claimed jobs held only to be given back: unrunnable ones, failed releases.
        self._give = GiveBacks(
            logger, queue=name, grace=settings.unrunnable_grace, worker_id=worker_id
        )
        self._sizer = sizer
        self._fetcher = Fetcher(self, self._give, sizer)
        self.counters = {
            "passes": 0,  # fetcher wake-ups: by poll, NOTIFY or a freed slot
            "claims": 0,  # claim round trips
            "claimed": 0,
        }
        if hands_on:
            self.counters["handed_on"] = 0  # buffered jobs released because a run turned long
        self.counters |= {
            "succeeded": 0,
            "failed": 0,
            "timed_out": 0,
            "released": 0,
            "handed_back": 0,  # claimed jobs this worker cannot run, handed back
        }

    # -- what the executor says ----------------------------------------------------------------

    @property
    @abstractmethod
    def stopping(self) -> bool:
        """Shutdown began: claim no more, start nothing new."""

    @abstractmethod
    def wake(self) -> None:
        """New jobs may be waiting (a NOTIFY arrived): claim now instead of at the next poll."""

    @abstractmethod
    def claim_size(self) -> int:
        """How many jobs to claim now (the queue is not paused)."""

    @abstractmethod
    def hold(self, records: list[JobRecord]) -> bool:
        """Take freshly claimed records: buffer or start them, or (shutdown began, or they
        cannot run here) hold them to give back; True when some are to be given back now."""

    @abstractmethod
    def _held_locked(self) -> set[UUID]:
        """The jobs held in the executor's own books (the lock is held)."""

    @abstractmethod
    def _unstarted_locked(self) -> set[UUID]:
        """The held jobs not started yet, in the executor's own books (the lock is held)."""

    @abstractmethod
    def _holding_locked(self) -> bool:
        """Whether the executor's own books hold any job (the lock is held)."""

    def hand_on(self) -> int:
        """Hold to release the buffered jobs that would wait behind a long run; how many."""
        return 0

    def wait_time(self) -> float:
        """How long the fetcher may wait for a wake-up."""
        return self.settings.poll_interval

    # -- the interface Worker uses -------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

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
            return self._held_locked() | self._give.jids()

    def buffered_jids(self) -> set[UUID]:
        """The held jobs not started yet: claimed and waiting (for a slot, the queue's
        throttle, or to begin), or waiting to be given back (unrunnable here, or a release
        that failed)."""
        with self._lock:
            return self._unstarted_locked() | self._give.jids()

    def drained(self) -> bool:
        """True when a claim sent while this runner held nothing found no runnable job of its
        queue (or the queue is paused), and it holds nothing still: nothing buffered, running,
        finishing or to be given back."""
        with self._lock:
            return self._fetcher.empty and self._holds_nothing_locked()

    # -- what the fetcher asks -----------------------------------------------------------------

    def holds_nothing(self) -> bool:
        with self._lock:
            return self._holds_nothing_locked()

    def _holds_nothing_locked(self) -> bool:
        return not (self._holding_locked() or self._give.unseen_claim or self._give.jids())

    def pending_acks(self) -> set[UUID]:
        return self.acker.pending_jids()

    def _settle_due(self) -> bool:
        """At the end of shutdown: something is still to be given back."""
        return self._give.unseen_claim or bool(self._give.jids())

    # -- outcomes ------------------------------------------------------------------------------

    def _acknowledge(
        self, record: JobRecord, job: Job, failure: BaseException | None, *, cancelled: bool
    ) -> None:
        """Hand the outcome of a finished run to the acker: completed, or failed (dead with
        reason "cancelled" when `cancelled`, else through the retry path)."""
        if failure is None:
            self.counters["succeeded"] += 1
            self.acker.complete(record.completion)
            return
        self.counters["failed"] += 1
        self.acker.fail(self._failure(record, job, failure, cancelled=cancelled))

    def _failure(
        self, record: JobRecord, job: Job, exc: BaseException, *, cancelled: bool = False
    ) -> Failure:
        return failure_of_run(
            record,
            type(job),
            exc,
            worker_id=self.worker_id,
            settings=self.settings,
            errors=self.errors,
            cancelled=cancelled,
        )
