"""Throughput over the last hour, from samples of the queues' `completed` counters.

The database keeps running totals, not a time series, so the web app samples the totals each
time it reads them (every dashboard refresh, every /metrics scrape) and reports the difference
between the newest sample and the oldest one within the hour, with the span it covers: until
the app has watched for an hour, the span is shorter and says so.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

HORIZON = 3600.0
#: Samples closer together than this replace each other (bounds the memory to ~360 samples).
MIN_SPACING = 10.0


@dataclass(frozen=True)
class Rate:
    """Jobs completed per queue within the last `span` seconds (about an hour once the app has
    sampled that long; longer when nothing sampled for a while)."""

    completed: dict[str, int]
    span: float

    @property
    def total(self) -> int:
        return sum(self.completed.values())

    def per_minute(self, queue: str | None = None) -> float | None:
        if self.span <= 0:
            return None
        count = self.total if queue is None else self.completed.get(queue, 0)
        return count * 60.0 / self.span


class Throughput:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, dict[str, int]]] = deque()

    def observe(self, completed: Mapping[str, int]) -> None:
        """Record the current `completed` total of each queue."""
        now = self._clock()
        with self._lock:
            samples = self._samples
            if len(samples) >= 2 and samples[-1][0] - samples[-2][0] < MIN_SPACING:
                samples.pop()  # the previous newest was too close to its neighbour: replace it
            self._samples.append((now, dict(completed)))
            # Keep exactly one sample at or before the horizon, as the hour's baseline.
            while len(self._samples) >= 2 and self._samples[1][0] <= now - HORIZON:
                self._samples.popleft()

    def last_hour(self) -> Rate:
        with self._lock:
            if not self._samples:
                return Rate({}, 0.0)
            (start, first), (end, last) = self._samples[0], self._samples[-1]
        completed = {}
        for queue, total in last.items():
            before = first.get(queue, 0)
            # A total that went down was reset: count from zero.
            completed[queue] = total - before if total >= before else total
        return Rate(completed, end - start)
