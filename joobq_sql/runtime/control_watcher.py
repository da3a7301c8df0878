"""Carries operators' decisions from the database to this worker, every poll interval:
paused queues stop starting jobs, and running jobs asked to cancel get their cancel flag.

Both are read by polling (two small queries a poll interval, the cancel one only while jobs
run), so they work in poll-only mode behind PgBouncer too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..store.base import Store

if TYPE_CHECKING:
    from .async_runner import AsyncQueueRunner
    from .queue_runner import QueueRunner

logger = logging.getLogger("joobq_sql.worker")


class ControlWatcher:
    def __init__(
        self,
        store: Store,
        runners: Mapping[str, QueueRunner | AsyncQueueRunner],
        *,
        worker_id: str,
        interval: float,
    ) -> None:
        self.store = store
        self.runners = runners
        self.worker_id = worker_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="joobq-control", daemon=True)
        self.errors = 0

    def start(self) -> None:
        try:
            self.check()  # honour a pause before the first claim
        except Exception as exc:  # the database may be away now: the loop retries, as all do
            self.errors += 1
            logger.warning("reading pauses and cancel requests failed (%s)", exc)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def check(self) -> None:
        paused = self.store.paused_queues()
        for name, runner in self.runners.items():
            runner.set_paused(name in paused)
        running = {jid: runner for runner in self.runners.values() for jid in runner.running_jids()}
        if running:
            for jid in self.store.cancel_requested(self.worker_id, list(running)):
                running[jid].request_cancel(jid)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:
                self.errors += 1
                logger.warning("reading pauses and cancel requests failed (%s)", exc)
