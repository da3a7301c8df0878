"""A threaded queue's slots and runs (the books of queue_runner.py, QueueRunner): a slot is one
of the queue's `workers` places to run a job, a run is one job in progress in a slot."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..job import Job, JobCancelled
from ..store.records import JobRecord
from .async_loop import AsyncLoop


@dataclass
class Slot:
    """One of the queue's `workers` places to run a job, served by one thread at a time."""

    index: int
    thread: threading.Thread | None = None
    retired: bool = False  # its thread overran a timeout; a fresh thread serves the slot now
    run: Run | None = None  # the run it is on, so a crash can still report it


@dataclass
class Run:
    record: JobRecord
    job: Job
    slot: Slot
    deadline: float | None
    is_async: bool
    state: str = "running"  # -> "done" (the worker reports) or "timed_out" (the watchdog does)
    started: float = field(default_factory=time.monotonic)
    future: concurrent.futures.Future[Any] | None = None  # an async job's task, to cancel it
    thread: threading.Thread | None = None  # a timed-out sync run's thread, watched until it ends

    def perform(self, async_loop: AsyncLoop) -> Any:
        """Run the job's perform in this thread; a coroutine it returns runs on `async_loop`,
        and this thread waits for it (until the deadline)."""
        result = self.job.perform()
        if inspect.isawaitable(result):
            remaining = None if self.deadline is None else max(self.deadline - time.monotonic(), 0)
            self.future = async_loop.submit(awaited(result))
            if self.job.cancel_requested:  # asked before the task existed
                self.future.cancel()
            return async_loop.wait(self.future, remaining)
        return result

    @property
    def timeout(self) -> float:
        """The run's timeout in seconds (0 without one)."""
        return self.deadline - self.started if self.deadline is not None else 0.0


_async_classes: dict[type, bool] = {}


def is_async(klass: type[Job]) -> bool:
    """Whether the class's perform is a coroutine function (looked up once per class)."""
    found = _async_classes.get(klass)
    if found is None:
        found = _async_classes[klass] = inspect.iscoroutinefunction(klass.perform)
    return found


async def awaited(awaitable: Any) -> Any:
    """The coroutine that awaits `awaitable` (AsyncLoop.submit takes a coroutine)."""
    return await awaitable


def is_cancellation(exc: BaseException) -> bool:
    """How a cancelled run ends: JobCancelled from check_cancelled, or a cancelled task."""
    return isinstance(
        exc, JobCancelled | asyncio.CancelledError | concurrent.futures.CancelledError
    )
