"""JoobQ's queue throttle: at most `limit` job starts per `period` seconds, in this process."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class Throttle:
    """A sliding-window limiter. `acquire` blocks until a start is allowed or `stop` is set."""

    def __init__(
        self, limit: int, period: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1:
            raise ValueError(f"throttle limit must be >= 1, got {limit}")
        if period <= 0:
            raise ValueError(f"throttle period must be > 0 seconds, got {period}")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Seconds until the next start is allowed (0: now), and reserve it when it is 0."""
        with self._lock:
            now = self._clock()
            while self._starts and self._starts[0] <= now - self.period:
                self._starts.popleft()
            if len(self._starts) < self.limit:
                self._starts.append(now)
                return 0.0
            return self._starts[0] + self.period - now

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for a start; False if `stop` was set first."""
        while True:
            delay = self.wait_time()
            if delay == 0.0:
                return True
            if stop.wait(delay):
                return False
