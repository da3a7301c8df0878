"""Acknowledges finished runs in batches: completions and failures, each kind in one fenced
statement per batch. Batching the acknowledgements is the largest throughput lever for a
database queue; fencing (attempt + worker) makes a late or repeated ack harmless.

Nothing is dropped, and one bad row blocks nothing else:
- when the database is unreachable (any error that is not about the rows, see store_errors),
  the batch is kept and retried with backoff. The lock the heartbeat waits for (quiet()) is
  held only while a statement runs, never across the wait, so leases keep being renewed.
  (If they expire all the same, the jobs are rescued and run again: at-least-once.)
- when the database refuses the rows' values (a DataError, an IntegrityError), the batch is
  split until the refused rows are found and the others are written; a refused failure is
  stored with a fallback error that names what went wrong (its details go to the log). A row
  refused even so is left to lease rescue, with an error logged.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from uuid import UUID

from ..store.base import Store
from ..store.records import Completion, Failure
from .error_details import error_class_name
from .store_errors import is_deterministic

logger = logging.getLogger("joobq_sql.acker")

#: One acknowledgement; a batch is written one kind at a time.
_Ack = Completion | Failure

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
                self._write(items)
            if stop:
                return

    def _write(self, items: list[object]) -> None:
        self.flushes += 1
        completions: list[_Ack] = [i for i in items if isinstance(i, Completion)]
        failures: list[_Ack] = [i for i in items if isinstance(i, Failure)]
        written = self._write_all(completions) if completions else True
        if failures:
            if written:
                self._write_all(failures)
            else:  # stopping with the database away: these are left to lease rescue too
                self._settled(failures)

    def _write_all(self, rows: list[_Ack]) -> bool:
        """Write `rows` (all of one kind), each part in its own `_writing` block.

        A part refused for its values (see store_errors) is split until the refused rows are
        found; a refused failure is stored again with a fallback error (`_fallback`). A part
        that fails for any other reason is retried with backoff, and between attempts
        `_writing` is free, so the heartbeat goes on renewing leases. False when the worker
        stopped while the database stayed away: the rows not written are left to lease rescue.
        """
        todo: deque[tuple[list[_Ack], bool]] = deque([(rows, False)])
        delay = 0.05
        while todo:
            part, is_fallback = todo.popleft()
            error = self._attempt(part)
            if error is None:
                delay = 0.05
                continue
            if is_deterministic(error):
                if len(part) > 1:
                    middle = len(part) // 2
                    todo.extendleft([(part[middle:], is_fallback), (part[:middle], is_fallback)])
                    continue
                (row,) = part
                fallback = None if is_fallback else _fallback(row, error)
                if fallback is None:
                    logger.error(
                        "the acknowledgement of job %s cannot be stored (%s: %s); its lease "
                        "will expire and it will be rescued",
                        row.jid,
                        type(error).__qualname__,
                        error,
                    )
                    self._settled(part)
                else:
                    logger.error(
                        "the failure of job %s could not be stored (%s: %s); storing it with "
                        "a fallback error instead of its details: %r",
                        row.jid,
                        type(error).__qualname__,
                        error,
                        row.error if isinstance(row, Failure) else None,
                    )
                    todo.appendleft(([fallback], True))
                continue
            self.flush_errors += 1
            logger.warning("acknowledging %d runs failed (%s); retrying", len(part), error)
            if self._on_failed_flush is not None:
                self._on_failed_flush(error)
            todo.appendleft((part, is_fallback))
            if self._stopped.wait(delay) and delay >= 5.0:
                # Stopping, and the database is still away: leases will be rescued.
                self._settled([row for rows_left, _ in todo for row in rows_left])
                return False
            delay = min(delay * 2, 5.0)
        return True

    def _attempt(self, part: list[_Ack]) -> Exception | None:
        """Write one part; the error it raised, or None once it is written and its jobs have
        left `_pending`, both inside one `_writing` block (see quiet())."""
        with self._writing:
            try:
                completions = [row for row in part if isinstance(row, Completion)]
                if completions:
                    self.store.complete_jobs(completions)
                failures = [row for row in part if isinstance(row, Failure)]
                if failures:
                    self.store.fail_jobs(failures, dead_letter_ttl=self.dead_letter_ttl)
            except Exception as exc:
                return exc
            self._settled(part)
        return None

    def _settled(self, rows: list[_Ack]) -> None:
        """These jobs are no longer this acker's to hold: written, or given up."""
        with self._idle:
            for row in rows:
                self._pending.discard(row.jid)
            self._idle.notify_all()


def _fallback(row: _Ack, error: Exception) -> Failure | None:
    """The failure `row` with an error the database can always store: ASCII only, no value
    taken from the original details but its class and type; None for a completion, which has
    nothing to replace."""
    if not isinstance(row, Failure):
        return None
    reason = f"{error_class_name(error)}: {str(error).splitlines()[0] if str(error) else ''}"
    details = {
        "error_class": _ascii(row.error.get("error_class", "unknown")),
        "error_type": _ascii(row.error.get("error_type", "unknown")),
        "message": _ascii(
            f"the error details of this failure could not be stored ({reason[:300]}); "
            "they are in the worker's log"
        ),
        "attempt": row.attempt,
        "worker_id": _ascii(row.worker_id or ""),
    }
    dead_reason = None if row.dead_reason is None else _ascii(row.dead_reason)
    return Failure(row.jid, row.attempt, row.worker_id, details, row.retry_in, dead_reason)


def _ascii(value: object) -> str:
    """`value` as printable ASCII text: anything else becomes a backslash escape."""
    return str(value).encode("ascii", "backslashreplace").decode("ascii")[:2000]
