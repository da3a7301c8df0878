"""Acknowledges finished runs in batches: completions and failures, each kind in one fenced
statement per batch. Batching the acknowledgements is the largest throughput lever for a
database queue; fencing (attempt + worker) makes a late or repeated ack harmless.

Nothing is dropped: when the database is unreachable, the batch is kept and retried with
backoff. (Leases keep running meanwhile; if they expire first, the jobs are rescued and run
again: at-least-once.)
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from uuid import UUID

from ..store.base import Store
from ..store.records import Completion, Failure

logger = logging.getLogger("joobq_sql.acker")

_STOP = object()


class Acker:
    def __init__(
        self,
        store: Store,
        *,
        dead_letter_ttl: float,
        max_batch: int = 1000,
        on_failed_flush: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.store = store
        self.dead_letter_ttl = dead_letter_ttl
        self.max_batch = max_batch
        self._on_failed_flush = on_failed_flush
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pending: set[UUID] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # Held while a batch is written and until its jobs leave `_pending` (see quiet()).
        self._writing = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="joobq-acker", daemon=True)
        self._stopped = threading.Event()
        self.flush_errors = 0
        self.flushes = 0

    def start(self) -> None:
        self._thread.start()

    def complete(self, completion: Completion) -> None:
        self._put(completion.jid, completion)

    def fail(self, failure: Failure) -> None:
        self._put(failure.jid, failure)

    def _put(self, jid: UUID, item: Completion | Failure) -> None:
        with self._lock:
            self._pending.add(jid)
        self._inbox.put(item)

    def pending_jids(self) -> set[UUID]:
        """Jobs finished here but not yet acknowledged: still `running` in the store, so the
        heartbeat keeps renewing their leases."""
        with self._lock:
            return set(self._pending)

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """A block in which no acknowledgement is written, and after every batch written
        before it has left `pending_jids`.

        The heartbeat renews leases inside it. A renewal and an acknowledgement of the same
        jobs then never run at once: they cannot deadlock on each other's row locks (each
        locks its rows in its own order), and a job whose acknowledgement committed before
        the renewal is no longer counted as held, so it is not mistaken for a lost lease."""
        with self._writing:
            yield

    def flush(self, timeout: float) -> bool:
        """Wait until every ack so far is written; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending, timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Write what is pending, then stop; False if it could not finish in `timeout`."""
        flushed = self.flush(timeout)
        self._inbox.put(_STOP)
        self._stopped.set()
        self._thread.join(timeout=max(timeout, 1.0))
        return flushed

    def _loop(self) -> None:
        while True:
            batch = [self._inbox.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            items = [item for item in batch if item is not _STOP]
            if items:
                with self._writing:
                    self._write(items)
            if stop:
                return

    def _write(self, items: list[object]) -> None:
        self.flushes += 1
        completions = [i for i in items if isinstance(i, Completion)]
        failures = [i for i in items if isinstance(i, Failure)]
        delay = 0.05
        while True:
            try:
                if completions:
                    self.store.complete_jobs(completions)
                    completions = []
                if failures:
                    self.store.fail_jobs(failures, dead_letter_ttl=self.dead_letter_ttl)
                break
            except Exception as exc:
                self.flush_errors += 1
                logger.warning("acknowledging %d runs failed (%s); retrying", len(items), exc)
                if self._on_failed_flush is not None:
                    self._on_failed_flush(exc)
                if self._stopped.wait(delay) and delay >= 5.0:
                    break  # stopping and the database is still away: leases will be rescued
                delay = min(delay * 2, 5.0)
        with self._idle:
            for item in items:
                self._pending.discard(item.jid)  # type: ignore[attr-defined]
            self._idle.notify_all()
