"""Which application enqueues a Job class: the small binding between the job model and the
application, so that `job.py` knows no application.

A JoobQ application registers itself when it is created and binds each Job class it runs
(through `app.queue(...)` or a schedule). ``MyJob.enqueue(...)`` asks `enqueuer_for(MyJob)` and
calls the `Enqueuer` it gets: the application that runs the class, else the only application
there is.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .job import Job


class Enqueuer(Protocol):
    """What Job's enqueue methods need of an application (JoobQ is one)."""

    def enqueue(self, job: Job, *, connection: Any = None, **options: Any) -> UUID: ...

    def enqueue_many(
        self, jobs: Sequence[Job], *, batch_size: int = 1000, connection: Any = None
    ) -> list[UUID]: ...

    async def enqueue_async(self, job: Job, *, connection: Any = None, **options: Any) -> UUID: ...

    async def enqueue_many_async(
        self, jobs: Sequence[Job], *, batch_size: int = 1000, connection: Any = None
    ) -> list[UUID]: ...


_lock = threading.Lock()
_enqueuers: list[Enqueuer] = []
_bound: dict[type[Job], Enqueuer] = {}


def register(enqueuer: Enqueuer) -> None:
    """Called by each new application: with only one, every Job class enqueues through it."""
    with _lock:
        _enqueuers.append(enqueuer)


def bind(job_class: type[Job], enqueuer: Enqueuer, *, replace: bool = True) -> None:
    """`job_class` is enqueued by `enqueuer` (a queue that runs it: `replace`; a schedule of it:
    only when no queue has bound it yet)."""
    with _lock:
        if replace:
            _bound[job_class] = enqueuer
        else:
            _bound.setdefault(job_class, enqueuer)


def enqueuer_for(job_class: type[Job]) -> Enqueuer:
    """The application that runs `job_class`, else the only application there is."""
    with _lock:
        found = _bound.get(job_class)
        if found is not None:
            return found
        if len(_enqueuers) == 1:
            return _enqueuers[0]
        count = len(_enqueuers)
    raise ConfigurationError(
        f"cannot tell which JoobQ application enqueues {job_class.__qualname__}: "
        + (
            "no JoobQ application exists yet; create one with JoobQ(...)"
            if not count
            else f"{count} exist and none runs it; add it with app.queue(..., jobs=[...])"
        )
    )


def enqueuer_of_all(jobs: Sequence[Job]) -> Enqueuer:
    """The one application that enqueues every job of `jobs` (a batch is one transaction)."""
    found = {id(e): e for e in map(enqueuer_for, {type(job) for job in jobs})}
    if len(found) > 1:
        raise ConfigurationError("batch_enqueue got jobs of different JoobQ applications")
    (enqueuer,) = found.values()
    return enqueuer
