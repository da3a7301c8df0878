"""JoobQ's error monitor: recent error details, windowed counts by type and queue, and an alert.

The monitor lives in one process and sees the errors its workers `record`. It keeps the
`recent_limit` newest error details for display, and a timestamp per error for the last `window`
seconds (at most `MAX_TRACKED_ERRORS`), pruned on every call, so memory stays bounded however
many jobs fail.

The alert has hysteresis: `on_alert` is called once when the count within the window reaches
`alert_threshold`, and is armed again only after the count has fallen below the threshold. A
steady storm of failures therefore produces one alert, not one per failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

logger = logging.getLogger("joobq_sql.error_monitor")

MAX_TRACKED_ERRORS: Final = 100_000
UNKNOWN: Final = "unknown"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """The errors within the window at the moment their count reached the alert threshold.

    `first_at` and `last_at` are readings of the monitor's clock (by default `time.monotonic`)
    for the oldest and newest error counted; `last_at - first_at` is the span they fell in.
    """

    count: int
    window: float
    by_type: dict[str, int]
    by_queue: dict[str, int]
    first_at: float
    last_at: float


class _Stamp(NamedTuple):
    at: float
    error_type: str
    queue: str


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class ErrorMonitor:
    """Thread-safe record of failed runs: recent details, windowed counts, a threshold alert.

    `window` (seconds, > 0) is the span counts and the alert look at; an error exactly `window`
    seconds old no longer counts. `alert_threshold` (>= 1, at most `MAX_TRACKED_ERRORS`) is the
    count that fires `on_alert`. `recent_limit` (>= 1) is how many error details `recent` can
    return. `clock` returns seconds and must not go backwards; tests inject a fake one.
    """

    def __init__(
        self,
        *,
        window: float = 300.0,
        alert_threshold: int = 10,
        recent_limit: int = 100,
        on_alert: Callable[[AlertEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not window > 0:  # also rejects NaN
            raise ValueError(f"window must be > 0 seconds, got {window!r}")
        _positive_int("alert_threshold", alert_threshold)
        if alert_threshold > MAX_TRACKED_ERRORS:
            raise ValueError(
                f"alert_threshold must be <= {MAX_TRACKED_ERRORS} (the errors tracked per "
                f"window), got {alert_threshold}"
            )
        _positive_int("recent_limit", recent_limit)
        self._window = float(window)
        self._threshold = alert_threshold
        self._on_alert = on_alert
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: deque[dict[str, Any]] = deque(maxlen=recent_limit)
        self._stamps: deque[_Stamp] = deque()  # oldest first, all within the window
        self._by_type: Counter[str] = Counter()
        self._by_queue: Counter[str] = Counter()
        self._alerting = False

    @property
    def window(self) -> float:
        """Seconds of history that counts and the alert cover."""
        return self._window

    @property
    def alert_threshold(self) -> int:
        """The count within the window at which `on_alert` fires."""
        return self._threshold

    @property
    def alerting(self) -> bool:
        """True from an alert until the count within the window falls below the threshold."""
        with self._lock:
            self._prune(self._clock())
            return self._alerting

    def record(self, details: Mapping[str, Any]) -> None:
        """Remember one failed run's error details (see `error_details.error_details`).

        The details are counted under their "error_type" and "queue" ("unknown" when missing).
        If this error brings the count within the window up to the threshold while the alert is
        armed, `on_alert` is called, after the lock is released; an exception it raises is
        logged and swallowed.
        """
        entry = dict(details)
        error_type = str(entry.get("error_type") or UNKNOWN)
        queue = str(entry.get("queue") or UNKNOWN)
        with self._lock:  # the clock is read under the lock, so stamps are stored in order
            stamp = _Stamp(self._clock(), error_type, queue)
            self._prune(stamp.at)
            self._recent.append(entry)
            if len(self._stamps) >= MAX_TRACKED_ERRORS:
                self._forget_oldest()
            self._stamps.append(stamp)
            self._by_type[stamp.error_type] += 1
            self._by_queue[stamp.queue] += 1
            event = None
            if not self._alerting and len(self._stamps) >= self._threshold:
                self._alerting = True
                event = AlertEvent(
                    count=len(self._stamps),
                    window=self._window,
                    by_type=dict(self._by_type),
                    by_queue=dict(self._by_queue),
                    first_at=self._stamps[0].at,
                    last_at=stamp.at,
                )
        if event is not None and self._on_alert is not None:
            try:
                self._on_alert(event)
            except Exception:
                logger.exception("on_alert raised on an alert of %d errors", event.count)

    def recent(
        self, limit: int = 20, *, queue: str | None = None, error_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Up to `limit` of the last `recent_limit` error details, newest first.

        `queue` and `error_type` keep only details with that value. Unlike the counts, this is
        not limited to the window: the newest errors are shown however old they are.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be an integer >= 0, got {limit!r}")
        with self._lock:
            entries = list(self._recent)
        found: list[dict[str, Any]] = []
        for entry in reversed(entries):
            if len(found) >= limit:
                break
            if queue is not None and entry.get("queue") != queue:
                continue
            if error_type is not None and entry.get("error_type") != error_type:
                continue
            found.append(dict(entry))
        return found

    def counts_by_type(self, window: float | None = None) -> dict[str, int]:
        """Errors per error_type within the last `window` seconds (default: the monitor's)."""
        return self._counts(window)[0]

    def counts_by_queue(self, window: float | None = None) -> dict[str, int]:
        """Errors per queue within the last `window` seconds (default: the monitor's)."""
        return self._counts(window)[1]

    def total(self, window: float | None = None) -> int:
        """Errors within the last `window` seconds (default: the monitor's)."""
        return sum(self._counts(window)[0].values())

    def stats(self) -> dict[str, Any]:
        """A JSON-ready summary: total_errors and its by_type/by_queue split within the window,
        window_seconds, recent_count (details held for `recent`), alert_threshold, alerting."""
        with self._lock:
            self._prune(self._clock())
            return {
                "total_errors": len(self._stamps),
                "window_seconds": self._window,
                "by_type": dict(self._by_type),
                "by_queue": dict(self._by_queue),
                "recent_count": len(self._recent),
                "alert_threshold": self._threshold,
                "alerting": self._alerting,
            }

    def _counts(self, window: float | None) -> tuple[dict[str, int], dict[str, int]]:
        if window is not None and not 0 < window <= self._window:
            raise ValueError(
                f"window must be > 0 and <= the monitor's window ({self._window} s), got {window!r}"
            )
        with self._lock:
            now = self._clock()
            self._prune(now)
            if window is None or window == self._window:
                return dict(self._by_type), dict(self._by_queue)
            cutoff = now - window
            by_type: Counter[str] = Counter()
            by_queue: Counter[str] = Counter()
            for stamp in reversed(self._stamps):
                if stamp.at <= cutoff:
                    break
                by_type[stamp.error_type] += 1
                by_queue[stamp.queue] += 1
            return dict(by_type), dict(by_queue)

    def _prune(self, now: float) -> None:
        """Forget errors that left the window; re-arm the alert once the count is below it."""
        cutoff = now - self._window
        while self._stamps and self._stamps[0].at <= cutoff:
            self._forget_oldest()
        if self._alerting and len(self._stamps) < self._threshold:
            self._alerting = False

    def _forget_oldest(self) -> None:
        stamp = self._stamps.popleft()
        for counter, key in ((self._by_type, stamp.error_type), (self._by_queue, stamp.queue)):
            counter[key] -= 1
            if counter[key] == 0:
                del counter[key]
