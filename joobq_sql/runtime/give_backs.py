"""What a queue runner must still give back of what it claimed, so that no error path forgets a
claimed job (issue 13, defect 3).

- **Unrunnable** jobs (decode_claimed could not make a Job of them) wait here to be handed back
  (Store.hand_back_jobs); runnable jobs of the same claim run meanwhile, whatever happens to
  the hand-back.
- **Unreleased** jobs: claimed, never started, whose release failed (the database was away).
- **An unseen claim**: a claim that raised may still have committed (a connection lost during
  its COMMIT), or may have claimed rows the runner never got to hold (an error while buffering
  them). The runner cannot know which rows; before its next claim it releases every running job
  of its worker in its queue that it does not hold (release_jobs with `keep`).

Until given back, these jobs count as held (the heartbeat renews their leases) and as not
started (so if the worker dies first, their rescue spends no retry budget). Failed attempts are
retried with a backoff. The runner does the I/O, from a thread or an event loop; this class
keeps the books, thread-safely.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from uuid import UUID

from ..store.unrunnable import HandBack
from .unrunnable_log import UnrunnableWarnings

#: At shutdown, how many times giving back is tried before the jobs are left to lease rescue.
SHUTDOWN_TRIES = 3


def retry_delay(failures: int) -> float:
    """Seconds before the next try after `failures` failures in a row: 0.1 s doubling to 5 s."""
    return float(min(0.05 * 2 ** max(failures, 1), 5.0))


class GiveBacks:
    def __init__(self, logger: logging.Logger, *, queue: str, grace: float, worker_id: str) -> None:
        self._logger = logger
        self.queue = queue
        self.worker_id = worker_id
        self.grace = grace
        self.warnings = UnrunnableWarnings(logger, queue=queue, grace=grace)
        self._lock = threading.Lock()
        self._unrunnable: dict[UUID, HandBack] = {}
        self._unreleased: set[UUID] = set()
        #: A claim raised: rows it may have claimed are not held; release them before claiming.
        self.unseen_claim = False
        self._failures = 0
        self._retry_at = 0.0

    def jids(self) -> set[UUID]:
        """Every job held only to be given back (held, and not started)."""
        with self._lock:
            return set(self._unrunnable) | self._unreleased

    def hold_unrunnable(self, hand_backs: Sequence[HandBack]) -> None:
        if not hand_backs:
            return
        with self._lock:
            self._unrunnable.update((h.jid, h) for h in hand_backs)
        self.warnings.report(hand_backs)

    def hold_unreleased(self, jids: Sequence[UUID]) -> None:
        with self._lock:
            self._unreleased.update(jids)

    def pending(self, *, force: bool = False) -> tuple[list[HandBack], list[UUID]]:
        """(hand-backs, releases) to try now: nothing while a failure's backoff runs, unless
        `force` (shutdown does not wait for it)."""
        with self._lock:
            if not force and time.monotonic() < self._retry_at:
                return [], []
            return list(self._unrunnable.values()), sorted(self._unreleased)

    def handed_back(self, hand_backs: Sequence[HandBack]) -> None:
        with self._lock:
            for hand_back in hand_backs:
                self._unrunnable.pop(hand_back.jid, None)

    def released(self, jids: Sequence[UUID]) -> None:
        with self._lock:
            self._unreleased.difference_update(jids)

    def succeeded(self) -> None:
        with self._lock:
            self._failures = 0
            self._retry_at = 0.0

    def failed(self, what: str, count: int, exc: BaseException) -> float:
        """Note a failed give-back (logged); return the seconds until the next try."""
        with self._lock:
            self._failures += 1
            delay = retry_delay(self._failures)
            self._retry_at = time.monotonic() + delay
        self._logger.warning(
            "queue %r: %s %d claimed jobs failed (%s); they stay held, their leases renewed, "
            "and it is retried in %.2fs",
            self.queue,
            what,
            count,
            exc,
            delay,
        )
        return delay

    def report_unseen_released(self, released: Sequence[UUID]) -> None:
        if released:
            self._logger.warning(
                "queue %r: a claim whose outcome this worker never saw had claimed %d jobs; "
                "released them, uncharged: %s",
                self.queue,
                len(released),
                sorted(map(str, released))[:10],
            )

    def left_to_rescue(self) -> None:
        """At shutdown, giving back failed every time: say what happens to the jobs."""
        left = self.jids()
        if left or self.unseen_claim:
            self._logger.warning(
                "queue %r: %d claimed jobs (and any of a claim whose outcome was never seen) "
                "could not be given back; they are rescued when their leases expire",
                self.queue,
                len(left),
            )
