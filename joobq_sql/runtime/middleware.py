"""Middleware around perform: JoobQ's pipeline, open to the application.

A middleware is a callable ``middleware(job, context, call_next)``; it must call ``call_next()``
to run the rest of the chain (and finally perform), and return its result. It may act before and
after, catch and re-raise, or refuse to run the job by raising. The runtime's own steps are
middlewares too: the queue throttle runs first. Timeouts and retries are not wrappers: a sync
call cannot be timed out from its own thread (see timeouts.py), and the retry decision is taken
once, after the chain has raised (see retry.py), so a failure makes exactly one state change.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..job import Job
from ..store.records import JobRecord
from .throttle import Throttle


@dataclass(frozen=True)
class JobContext:
    """What a middleware knows about the run besides the job itself."""

    record: JobRecord
    worker_id: str
    queue: str

    @property
    def attempt(self) -> int:
        return self.record.attempt


class Middleware(Protocol):
    def __call__(self, job: Job, context: JobContext, call_next: Callable[[], Any]) -> Any: ...


class ThrottleMiddleware:
    """Wait for the queue's throttle before the job starts (the lease is renewed meanwhile)."""

    def __init__(self, throttle: Throttle, stop: threading.Event) -> None:
        self.throttle = throttle
        self.stop = stop

    def __call__(self, job: Job, context: JobContext, call_next: Callable[[], Any]) -> Any:
        if not self.throttle.acquire(self.stop):
            raise ShutdownBeforeStart("the worker stopped while the job waited for its throttle")
        return call_next()


class ShutdownBeforeStart(Exception):
    """The worker stopped before this job started; it is released, not failed."""


def chain(
    middlewares: Sequence[Middleware], job: Job, context: JobContext, perform: Callable[[], Any]
) -> Callable[[], Any]:
    """Compose `middlewares` around `perform`; the first middleware is the outermost."""
    call = perform
    for middleware in reversed(middlewares):
        call = functools.partial(middleware, job, context, call)
    return call
