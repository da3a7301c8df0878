"""A maintenance duty: one chore on the jobs table, run every `interval` seconds in bounded passes.

Every duty is safe to run in many worker processes at once: each pass is one store statement
that picks its rows with FOR UPDATE SKIP LOCKED, so concurrent maintainers split the rows
between them instead of touching one twice. That is why no leader election is needed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import timedelta
from typing import ClassVar

from ... import _validation as check
from ...store.base import Store

#: Rows one pass touches at most: one statement stays short and holds few row locks.
DEFAULT_LIMIT = 1000
#: Passes one run makes at most, so a huge backlog cannot keep the other duties waiting.
MAX_PASSES_PER_RUN = 100


class Duty(ABC):
    """A named chore. `run_once` drains it in passes of at most `limit` rows: a full pass
    means more may be waiting, so it goes again at once rather than an interval later."""

    #: Names the duty in logs and in Maintainer.stats(); unique within one Maintainer.
    name: ClassVar[str] = "duty"
    #: Seconds between runs when the constructor is given none.
    default_interval: ClassVar[float] = 60.0

    def __init__(
        self,
        *,
        interval: float | timedelta | None = None,
        limit: int = DEFAULT_LIMIT,
        max_passes: int = MAX_PASSES_PER_RUN,
    ) -> None:
        self.interval = check.seconds(
            self.default_interval if interval is None else interval,
            what=f"{self.name} interval",
            allow_zero=False,
            at_most=check.MAX_WAIT_SECONDS,  # the Maintainer's thread waits on it
        )
        self.limit = check.positive_int(limit, what=f"{self.name} limit")
        self.max_passes = check.positive_int(max_passes, what=f"{self.name} max_passes")
        #: True when the last run stopped at max_passes with full passes: work is left over.
        self.backlogged = False

    @abstractmethod
    def run_pass(self, limit: int) -> int:
        """Touch at most `limit` jobs in one store statement; return how many."""

    def run_once(self, *, should_stop: Callable[[], bool] | None = None) -> int:
        """Run passes until one comes back short, at most `max_passes`; return jobs touched.

        `should_stop` is asked between passes, so a shutdown need not wait for a long drain.
        """
        touched = 0
        self.backlogged = False
        for _ in range(self.max_passes):
            count = self.run_pass(self.limit)
            touched += count
            if count < self.limit:
                return touched
            if should_stop is not None and should_stop():
                break
        self.backlogged = True
        return touched

    def __repr__(self) -> str:
        return f"{type(self).__name__}(interval={self.interval}, limit={self.limit})"


class StoreDuty(Duty):
    """A duty that is one Store maintenance method, called with `limit=`."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float | timedelta | None = None,
        limit: int = DEFAULT_LIMIT,
        max_passes: int = MAX_PASSES_PER_RUN,
    ) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"{self.name} needs a Store, got {type(store).__name__}: {store!r}")
        super().__init__(interval=interval, limit=limit, max_passes=max_passes)
        self.store = store
