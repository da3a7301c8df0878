"""The steps of the fetcher (fetcher.py), and how each executor carries them out.

The fetcher's loop and its give-backs do no I/O themselves: they are generators that yield a
step for each store call, wait and sleep, and are sent each step's result. `drive` runs such a
generator in a thread (the thread executor's, with `ThreadSteps`: the sync Store, waits on
threading events); `drive_async` runs it on an event loop, awaiting the async executor's own
`do` (its AsyncStore). A step that raises is thrown back into the generator at the point that
yielded it, so the fetcher's try/except reads as if it called the store directly. One claim
loop, then, for both executors, and its per-claim cost is a few generator resumptions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from ..store.base import Store
from ..store.unrunnable import HandBack

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ClaimJobs:
    """Store.claim_jobs(queue, worker_id, limit, lease=lease) -> the claimed records."""

    queue: str
    worker_id: str
    limit: int
    lease: float


@dataclass(frozen=True, slots=True)
class ReleaseJobs:
    """Store.release_jobs(worker_id, jids, queue=queue, keep=keep) -> the released jids."""

    worker_id: str
    jids: Sequence[UUID] | None = None
    queue: str | None = None
    keep: Sequence[UUID] | None = None


@dataclass(frozen=True, slots=True)
class HandBackJobs:
    """Store.hand_back_jobs(hand_backs, grace=grace) -> the new status of each job handed back."""

    hand_backs: Sequence[HandBack]
    grace: float


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait for a wake-up (a NOTIFY, a freed slot, a resume, shutdown) or `seconds`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Backoff:
    """A pass failed: wait `seconds` before the next (the thread executor wakes early only for
    shutdown, the async one for any wake-up, as each always did)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Sleep:
    """Sleep `seconds` between two tries at shutdown (nothing wakes it)."""

    seconds: float


StoreStep = ClaimJobs | ReleaseJobs | HandBackJobs
Step = StoreStep | Wait | Backoff | Sleep
#: A step generator: yields steps, is sent each step's result, returns a T.
Steps = Generator[Step, Any, T]


class ThreadSteps:
    """Carries out steps in the calling thread (the thread executor's `do`): store steps on
    the sync `store`; a Wait until `wake` is set (then clears it), a Backoff until `stop` is."""

    def __init__(self, store: Store, *, wake: threading.Event, stop: threading.Event) -> None:
        self.store = store
        self.wake = wake
        self.stop = stop

    def __call__(self, step: Step) -> Any:
        store = self.store
        if isinstance(step, ClaimJobs):
            return store.claim_jobs(step.queue, step.worker_id, step.limit, lease=step.lease)
        if isinstance(step, ReleaseJobs):
            return store.release_jobs(step.worker_id, step.jids, queue=step.queue, keep=step.keep)
        if isinstance(step, HandBackJobs):
            return store.hand_back_jobs(step.hand_backs, grace=step.grace)
        if isinstance(step, Wait):
            self.wake.wait(step.seconds)
            self.wake.clear()
        elif isinstance(step, Backoff):
            self.stop.wait(step.seconds)
        else:
            time.sleep(step.seconds)
        return None


def drive(steps: Steps[T], do: Callable[[Step], Any]) -> T:
    """Run a step generator to its end in this thread: `do` carries out each step; what it
    raises (an Exception) is thrown into the generator where the step was yielded."""
    result: Any = None
    error: Exception | None = None
    while True:
        try:
            step = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result = error = None
        try:
            result = do(step)
        except Exception as exc:
            error = exc


async def drive_async(steps: Steps[T], do: Callable[[Step], Awaitable[Any]]) -> T:
    """drive() on an event loop: `do` is awaited for each step."""
    result: Any = None
    error: Exception | None = None
    while True:
        try:
            step = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        result = error = None
        try:
            result = await do(step)
        except Exception as exc:
            error = exc
