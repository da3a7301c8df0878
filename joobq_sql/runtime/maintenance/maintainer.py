"""Maintainer: one daemon thread that runs every maintenance duty on its own interval.

Every worker process may run a Maintainer: the duties' statements use FOR UPDATE SKIP LOCKED,
so several maintainers share the work without a leader to elect or lose.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..._validation import MAX_WAIT_SECONDS
from .duty import Duty

#: Seconds before the first retry of a failed duty; it doubles per failure in a row, up to the
#: duty's interval, so a blip (a restarting database) heals fast and an outage is not hammered.
ERROR_BACKOFF_START = 1.0

_log = logging.getLogger("joobq_sql.runtime.maintenance")

ErrorHook = Callable[[Duty, BaseException], None]


@dataclass
class _Schedule:
    """One duty's next run and counters. Counters change under Maintainer._counters_lock."""

    duty: Duty
    due: float = 0.0  # monotonic seconds; 0 is due at once, so the first run follows start()
    runs: int = 0
    touched: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None


class Maintainer:
    """Runs `duties`, each when due, on one daemon thread (`start`/`stop`), or on the caller's
    thread (`run_pending`, for tests). A duty that raises is logged, counted, reported to
    `on_error`, and retried after a backoff; the maintainer itself keeps going."""

    def __init__(
        self,
        duties: Sequence[Duty],
        *,
        on_error: ErrorHook | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        duties = list(duties)
        if not duties:
            raise ValueError("Maintainer needs at least one duty, got none")
        for duty in duties:
            if not isinstance(duty, Duty):
                raise TypeError(f"duties must be Duty instances, got {type(duty).__name__}")
        repeated = [name for name, n in Counter(d.name for d in duties).items() if n > 1]
        if repeated:
            raise ValueError(f"duty names must be unique; {repeated[0]!r} appears more than once")
        if on_error is not None and not callable(on_error):
            raise TypeError(f"on_error must be callable, got {on_error!r}")
        self._schedules = [_Schedule(duty) for duty in duties]
        self._on_error = on_error
        self._log = logger or _log
        self._stop = threading.Event()
        self._counters_lock = threading.Lock()  # stats() reads from other threads
        self._run_lock = threading.Lock()  # run_pending never overlaps the thread's own run
        self._thread: threading.Thread | None = None

    @property
    def duties(self) -> list[Duty]:
        return [s.duty for s in self._schedules]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread; every duty runs right away, then on its interval. Once only."""
        if self._thread is not None:
            raise RuntimeError("this Maintainer was already started; make a new one")
        self._thread = threading.Thread(target=self._loop, name="joobq-maintainer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to stop and wait up to `timeout` seconds; True when it has ended.

        A duty in progress finishes its current pass (one statement) first.
        """
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def run_pending(self) -> float:
        """Run every duty that is due now, in order; return seconds until the next is due
        (at most MAX_WAIT_SECONDS, a wait any thread can make)."""
        with self._run_lock:
            for schedule in self._schedules:
                if self._stop.is_set():
                    break
                if schedule.due <= time.monotonic():
                    self._run(schedule)
            wait = min(s.due for s in self._schedules) - time.monotonic()
            return min(max(0.0, wait), MAX_WAIT_SECONDS)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per duty name: `runs` that succeeded, jobs `touched`, `errors` (failed runs, and
        `consecutive_errors` of them since the last success), and `last_error` (None if none)."""
        with self._counters_lock:
            return {
                s.duty.name: {
                    "runs": s.runs,
                    "touched": s.touched,
                    "errors": s.errors,
                    "consecutive_errors": s.consecutive_errors,
                    "last_error": s.last_error,
                }
                for s in self._schedules
            }

    # -- internals -------------------------------------------------------------------------

    def _loop(self) -> None:
        # Waiting on the event, never sleeping, is what lets stop() return at once.
        while not self._stop.is_set():
            try:
                wait = self.run_pending()
            except Exception:  # not a duty's error (those are handled per duty): ours
                self._log.exception(
                    "the maintenance loop failed; retrying in %.1fs", ERROR_BACKOFF_START
                )
                wait = ERROR_BACKOFF_START
            self._stop.wait(wait)

    def _run(self, schedule: _Schedule) -> None:
        duty = schedule.duty
        try:
            touched = duty.run_once(should_stop=self._stop.is_set)
        except Exception as exc:
            self._failed(schedule, exc)
            return
        with self._counters_lock:
            recovered = schedule.consecutive_errors
            schedule.runs += 1
            schedule.touched += touched
            schedule.consecutive_errors = 0
        if recovered:
            self._log.info("maintenance duty %s recovered after %d failures", duty.name, recovered)
        if touched:
            self._log.info("maintenance duty %s touched %d rows", duty.name, touched)
        # Work left over after the pass cap: due again at once, after the other due duties.
        schedule.due = time.monotonic() + (0.0 if duty.backlogged else duty.interval)

    def _failed(self, schedule: _Schedule, exc: Exception) -> None:
        duty = schedule.duty
        with self._counters_lock:
            schedule.errors += 1
            schedule.consecutive_errors += 1
            failures = schedule.consecutive_errors
            schedule.last_error = f"{type(exc).__name__}: {exc}"
        delay = min(duty.interval, ERROR_BACKOFF_START * 2.0 ** min(failures - 1, 30))
        schedule.due = time.monotonic() + delay
        # One line per failure, even the first of an outage: in an outage every duty fails at
        # once, and a traceback each buries the log. The first one's traceback is at debug.
        first_line = next((line for line in schedule.last_error.splitlines() if line.strip()), "")
        self._log.warning(
            "maintenance duty %s failed (%d in a row), retrying in %.1fs: %s",
            duty.name,
            failures,
            delay,
            first_line.strip(),
        )
        if failures == 1:
            self._log.debug("maintenance duty %s failed", duty.name, exc_info=exc)
        if self._on_error is not None:
            try:
                self._on_error(duty, exc)
            except Exception:
                self._log.exception("on_error hook failed for maintenance duty %s", duty.name)
