"""The warning a worker logs when it claims jobs it cannot run and hands them back.

One line per job type at once (naming the type, the job and why), then at most one line per
type a minute, counting the hand-backs in between: a backlog of thousands of jobs of a new type
during a rolling deploy, each claimed again every minute, must not flood the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from ..store.unrunnable import HandBack, duration_text

#: Seconds between two warnings about the same job type.
WARN_EVERY = 60.0


class UnrunnableWarnings:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        queue: str,
        grace: float,
        every: float = WARN_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._queue = queue
        self._grace = grace
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # job type -> when it was last warned about
        self._quiet: dict[str, int] = {}  # job type -> hand-backs not warned about since

    def report(self, hand_backs: Sequence[HandBack]) -> None:
        now = self._clock()
        for hand_back in hand_backs:
            with self._lock:
                job_type = hand_back.job_type
                last = self._last.get(job_type)
                if last is not None and now - last < self._every:
                    self._quiet[job_type] = self._quiet.get(job_type, 0) + 1
                    continue
                self._last[job_type] = now
                unreported = self._quiet.pop(job_type, 0)
            self._warn(hand_back, unreported)

    def _warn(self, hand_back: HandBack, unreported: int) -> None:
        since = f" ({unreported} more of this type since the last warning)" if unreported else ""
        if self._grace > 0:
            fate = "handing it back, uncharged, for a worker that can (it goes dead if it "
            fate += f"stays unrunnable for {duration_text(self._grace)})"
        else:
            fate = "it goes dead (unrunnable_grace is 0)"
        self._logger.warning(
            "queue %r: this worker cannot run job %s of type %r (%s); %s%s",
            self._queue,
            hand_back.jid,
            hand_back.job_type,
            hand_back.reason,
            fate,
            since,
        )
