"""A Worker runs an application's queues in this process, with everything they need: the
acknowledger, the lease heartbeat, the LISTEN/NOTIFY listener and the maintenance duties."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

from ..scheduler.runner import SchedulerRunner
from .acker import Acker
from .async_loop import AsyncLoop
from .async_runner import AsyncQueueRunner
from .control_watcher import ControlWatcher
from .heartbeat import Heartbeat
from .maintenance import (
    CompletedPruner,
    DeadPurger,
    Duty,
    ExpirySweeper,
    HistoryPruner,
    LeaseRescuer,
    Maintainer,
    TableVacuumer,
    WorkerPruner,
)
from .queue_runner import QueueRunner
from .throttle import Throttle

if TYPE_CHECKING:
    from ..job import Job
    from ..scheduler.schedules import Schedule
    from ..settings import Settings
    from ..store.base import Store
    from ..store.records import NewJob
    from .error_monitor import ErrorMonitor
    from .middleware import Middleware

logger = logging.getLogger("joobq_sql.worker")


def make_worker_id() -> str:
    """host:pid:random — unique per Worker, readable in the jobs table."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class QueueDefinition:
    """A queue this application runs: `workers` jobs at most at once, from `job_classes`, with
    an optional throttle of `throttle_limit` starts per `throttle_period` seconds. `mode`
    "threads" runs each job on a worker thread; "async" runs ``async def perform`` jobs as
    tasks on one event loop (joobq_sql/runtime/async_runner.py)."""

    name: str
    workers: int
    job_classes: tuple[type[Job], ...]
    throttle_limit: int | None = None
    throttle_period: float | None = None
    mode: str = "threads"


class WorkerApp(Protocol):
    """What a Worker needs of the application whose queues it runs (JoobQ is one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def middlewares(self) -> list[Middleware]: ...

    @property
    def errors(self) -> ErrorMonitor: ...

    @property
    def schedules(self) -> dict[str, Schedule]: ...

    def schedule_job(self, schedule: Schedule) -> NewJob: ...


class Worker:
    def __init__(self, app: WorkerApp, queues: Sequence[QueueDefinition]) -> None:
        settings = app.settings
        self.app = app
        self.store = store = app.store
        self.settings = settings
        self.worker_id = make_worker_id()
        self.async_loop = AsyncLoop()
        self.acker = Acker(store, dead_letter_ttl=settings.dead_letter_ttl)
        self.runners = {
            q.name: (AsyncQueueRunner if q.mode == "async" else QueueRunner)(
                name=q.name,
                workers=q.workers,
                store=store,
                worker_id=self.worker_id,
                settings=settings,
                middlewares=app.middlewares,
                acker=self.acker,
                async_loop=self.async_loop,
                errors=app.errors,
                throttle=(
                    Throttle(q.throttle_limit, q.throttle_period)
                    if q.throttle_limit and q.throttle_period
                    else None
                ),
            )
            for q in queues
        }
        self.heartbeat = Heartbeat(
            store,
            worker_id=self.worker_id,
            lease=settings.lease,
            interval=settings.heartbeat_seconds,
            held_jids=self.held_jids,
            unstarted_jids=self.buffered_jids,
            on_lost=self._lost,
            presence=self._seen,
            quiet=self.acker.quiet,
        )
        interval = settings.maintenance_interval
        duties: list[Duty] = [
            LeaseRescuer(store, interval=interval),
            ExpirySweeper(store, interval=interval),
            DeadPurger(store, interval=interval),
            CompletedPruner(store, interval=interval),
            HistoryPruner(store, interval=max(interval, 60.0)),
            WorkerPruner(store, interval=interval),
        ]
        if settings.self_vacuum:  # a store without hot tables reports none: nothing to do
            # Every few seconds (one row of statistics read): a minute of a busy queue's
            # dead row versions is what it is there to spare the table.
            duties.append(
                TableVacuumer(
                    store,
                    interval=min(interval, TableVacuumer.default_interval),
                    dead_share=settings.self_vacuum_threshold,
                )
            )
        self.maintainer = Maintainer(duties)
        self.listener = (
            store.listener(on_wake=self._wake_queue, on_reconnect=self._wake_all)
            if settings.notify
            else None
        )
        self.control = ControlWatcher(
            store, self.runners, worker_id=self.worker_id, interval=settings.poll_interval
        )
        self.scheduler = (
            SchedulerRunner(store, list(app.schedules.values()), new_job=app.schedule_job)
            if app.schedules
            else None
        )
        self._stopped = threading.Event()
        self._hurry = threading.Event()

    def _seen(self) -> None:
        # With the interval, any reader can tell this worker alive or dead (store/presence.py).
        self.store.worker_seen(
            self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=list(self.runners),
            heartbeat_interval=self.settings.heartbeat_seconds,
        )

    def held_jids(self) -> set[UUID]:
        held = self.acker.pending_jids()
        for runner in self.runners.values():
            held |= runner.held_jids()
        return held

    def drained(self) -> bool:
        """The drain-and-exit condition (`app.run(until_empty=True)`): no job of this worker's
        queues was runnable when each last claimed while holding nothing (or the queue is
        paused), none is held here (buffered, running or to be given back), and every
        acknowledgement is written. Jobs due later (delayed, or a retry's backoff) and jobs
        running on other workers do not count."""
        return all(r.drained() for r in self.runners.values()) and not self.acker.pending_jids()

    def buffered_jids(self) -> set[UUID]:
        """The held jobs that have not started: claimed, waiting in a runner's buffer."""
        buffered: set[UUID] = set()
        for runner in self.runners.values():
            buffered |= runner.buffered_jids()
        return buffered

    def _lost(self, jids: set[UUID]) -> None:
        logger.warning(
            "%d jobs were rescued from this worker after their lease expired; their finish "
            "will be ignored: %s",
            len(jids),
            sorted(map(str, jids))[:10],
        )

    def _wake_queue(self, queue: str) -> None:
        runner = self.runners.get(queue)
        if runner is not None:
            runner.wake()

    def _wake_all(self) -> None:
        for runner in self.runners.values():
            runner.wake()

    def start(self) -> None:
        try:
            self._seen()
        except Exception as exc:  # the fetchers will report the database; do not fail start-up
            logger.warning("registering worker %s failed (%s)", self.worker_id, exc)
        self.acker.start()
        if self.listener is not None:
            self.listener.start()
        self.control.start()
        for runner in self.runners.values():
            runner.start()
        self.heartbeat.start()
        self.maintainer.start()
        if self.scheduler is not None:
            self.scheduler.start()
        logger.info("worker %s running queues %s", self.worker_id, sorted(self.runners))

    def stop(self, grace: float | None = None) -> bool:
        """Drain and stop: stop claiming, release unstarted jobs at once, let running jobs
        finish within `grace` seconds, write every acknowledgement. True when nothing was
        left running."""
        if self._stopped.is_set():
            return True
        grace = self.settings.shutdown_grace if grace is None else grace
        if self.scheduler is not None:
            self.scheduler.stop()
        for runner in self.runners.values():
            runner.begin_shutdown()
        deadline = time.monotonic() + grace
        idle = True
        for runner in self.runners.values():
            while not runner.wait_idle(min(0.1, max(deadline - time.monotonic(), 0))):
                if time.monotonic() >= deadline or self._hurry.is_set():
                    idle = False
                    break
        if not idle:
            # Async jobs stop at their next await; sync threads cannot be stopped, and their
            # jobs are rescued when the leases we no longer renew expire. One short wait in all,
            # so a stuck job cannot stretch the shutdown past what an orchestrator allows.
            self.async_loop.cancel_all()
            settle = time.monotonic() + 1.0
            for runner in self.runners.values():
                runner.wait_idle(max(settle - time.monotonic(), 0))
            logger.warning("shutdown grace over; jobs still running are left to lease rescue")
        for runner in self.runners.values():
            runner.finish()
        self.acker.stop(timeout=10.0)
        self.control.stop()
        self.heartbeat.stop()
        self.maintainer.stop()
        if self.listener is not None:
            self.listener.stop()
        self.async_loop.stop()
        with contextlib.suppress(Exception):
            self.store.worker_gone(self.worker_id)
        self._stopped.set()
        return idle

    def stop_scheduler(self) -> None:
        """Stop enqueueing this application's recurring and cron jobs from this process (other
        processes running the scheduler go on); the queues keep working."""
        if self.scheduler is not None:
            self.scheduler.stop()

    def hurry(self) -> None:
        """Skip the rest of the grace period (a second SIGTERM/SIGINT)."""
        self._hurry.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)
