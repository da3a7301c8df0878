"""MemoryStore: the Store contract in process memory, for unit tests and as a reference model.

It follows the PostgreSQL store's SQL (joobq_sql/store/postgres/sql/) statement by statement,
because a hypothesis state machine compares the two step by step. Where the SQL leaves an order
open (ties in ORDER BY), ties go by insertion order (`seq`, the SQL `id` column).

One RLock guards everything, so each method is one atomic step, like one SQL statement. Each
method reads the clock once, as PostgreSQL's now() is fixed within a statement.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from .. import _validation as check
from ..errors import DuplicateJobError
from ..status import RUNNABLE_STATUSES, JobStatus
from .base import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEAD_LETTER_TTL,
    DEFAULT_LEASE,
    RELEASE_JIDS_OR_KEEP,
    Store,
    checked_started,
)
from .memory_operations import MemoryOperations
from .records import (
    COUNTER_NAMES,
    MAX_ERROR_HISTORY,
    Completion,
    Failure,
    JobRecord,
    NewJob,
    QueueStats,
    WorkerInfo,
    to_json_object,
)
from .unrunnable import (
    UNRUNNABLE_MAX_BACKOFF,
    UNRUNNABLE_MIN_BACKOFF,
    HandBack,
    checked_grace,
    checked_hand_backs,
    unrunnable_dead_reason,
)

_RUNNING = JobStatus.RUNNING
_DEAD = JobStatus.DEAD
#: queue_stats splits these into waiting and due later; `retrying` has a column of its own.
_WAITING = (JobStatus.ENQUEUED, JobStatus.SCHEDULED)
#: What due_jobs moves to `enqueued` once due.
_DELAYED = (JobStatus.SCHEDULED, JobStatus.RETRYING)
_STAT_COLUMNS = ("waiting", "due_later", "running", "retrying", "dead", "completed")
_UNCLAIMED: dict[str, Any] = {
    "worker_id": None,
    "lease_expires_at": None,
    "cancel_requested_at": None,
}
_NOT_DEAD: dict[str, Any] = {"dead_reason": None, "dead_expires_at": None, "finished_at": None}
#: The columns of a new row that no insert sets.
_FRESH: dict[str, Any] = {"attempt": 0, "expires_at": None, "last_error": None, **_UNCLAIMED}


#: Ordering by `_LATEST - t` puts the latest `t` first.
_LATEST = datetime.max.replace(tzinfo=UTC)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _claim_order(row: JobRecord) -> tuple[int, datetime, int]:
    return (-row.priority, row.run_at, row.seq)


def _has_runs_left(row: JobRecord) -> bool:
    """Retries count from the last re-drive, as the SQL's attempt - redrive_attempt."""
    return row.attempt - row.redrive_attempt <= row.max_retries


def _rescue_outcome(row: JobRecord) -> str:
    """What a lease rescue does with `row` (as rescue_expired_leases.sql): a pending cancel
    makes it dead; an attempt its worker reported unstarted is requeued uncharged, once in a
    row; otherwise the lost run counts, so a job that kills its worker cannot loop forever."""
    if row.cancel_requested_at is not None:
        return "cancelled"
    last_type = (row.last_error or {}).get("error_type")
    if row.started is False and last_type != "lease_expired_unstarted":
        return "unstarted"
    return "requeue" if _has_runs_left(row) else "dead"


def _has_started(row: JobRecord) -> bool:
    """A run of it spent retry budget (it failed, or its lease was lost while it may have been
    running). Releases and unstarted hand-backs spend none: such a job has not started. A job
    rescued as unstarted may have (the mark can lag a start by one renewal): it counts."""
    rescued_unstarted = (row.last_error or {}).get("error_type") == "lease_expired_unstarted"
    return row.attempt > row.redrive_attempt or rescued_unstarted


def _expired(row: JobRecord, now: datetime) -> bool:
    """`expires` bounds the wait for a job's first start: a started job never expires."""
    return row.expires_at is not None and row.expires_at <= now and not _has_started(row)


#: As the claim statements: a row edited to the CHECK's edge (attempt < 1e9) is never claimed.
_UNCLAIMABLE_ATTEMPT = 999_999_999


def _runnable(row: JobRecord, now: datetime) -> bool:
    return (
        row.status in RUNNABLE_STATUSES
        and row.run_at <= now
        and not _expired(row, now)
        and row.attempt < _UNCLAIMABLE_ATTEMPT
    )


def _error_changes(row: JobRecord, error: dict[str, Any]) -> dict[str, Any]:
    """Record a failed or lost run's error; the SQL drops the oldest entry of a full history."""
    kept = row.errors[1:] if len(row.errors) >= MAX_ERROR_HISTORY else row.errors
    return {"last_error": error, "errors": [*kept, copy.deepcopy(error)], **_UNCLAIMED}


def _dead(reason: str, now: datetime, ttl: timedelta) -> dict[str, Any]:
    return {
        "status": _DEAD,
        "dead_reason": reason,
        "dead_expires_at": now + ttl,
        "finished_at": now,
    }


def _require(values: Iterable[Any], kind: type, method: str) -> list[Any]:
    values = list(values)
    for value in values:
        if not isinstance(value, kind):
            raise TypeError(f"{method} takes {kind.__name__} values, got {value!r}")
    return values


def _utc(value: datetime | None, what: str) -> datetime | None:
    return None if value is None else check.aware_datetime(value, what=what).astimezone(UTC)


class MemoryStore(MemoryOperations, Store):
    """A thread-safe in-process Store. Nothing persists; every instance has its own jobs.

    `clock` is the store's clock (PostgreSQL's now()) and must return aware datetimes; inject
    one to move time in tests.
    """

    never_blocks = True

    def __init__(
        self,
        *,
        lease: timedelta | float = DEFAULT_LEASE,
        dead_letter_ttl: timedelta | float = DEFAULT_DEAD_LETTER_TTL,
        keep_completed: timedelta | float | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(
            lease=lease, dead_letter_ttl=dead_letter_ttl, keep_completed=keep_completed
        )
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be a callable returning a datetime, got {clock!r}")
        self._clock: Callable[[], datetime] = clock or _utc_now
        self._lock = threading.RLock()
        # Rows are frozen records replaced on every change, so a record handed out never sees
        # a later change; only their JSON values need copying on the way out.
        self._jobs: dict[UUID, JobRecord] = {}
        self._counters: dict[str, dict[str, int]] = {}
        self._paused: set[str] = set()
        self._ticks: dict[str, dict[datetime, UUID]] = {}
        self._workers: dict[str, WorkerInfo] = {}
        self._throughput: dict[tuple[str, datetime], int] = {}
        self._next_seq = 1

    # -- helpers ---------------------------------------------------------------------------

    def now(self) -> datetime:
        value = check.aware_datetime(self._clock(), what="the MemoryStore clock's value")
        # PostgreSQL hands timestamptz values back in UTC; so does this store, for equality.
        return value.astimezone(UTC)

    @staticmethod
    def _out(row: JobRecord) -> JobRecord:
        deep = copy.deepcopy
        return replace(
            row, args=deep(row.args), last_error=deep(row.last_error), errors=deep(row.errors)
        )

    def _select(
        self,
        where: Callable[[JobRecord], bool],
        order: Callable[[JobRecord], Any],
        limit: int | None,
    ) -> list[JobRecord]:
        rows = sorted(filter(where, self._jobs.values()), key=order)
        return rows if limit is None else rows[:limit]

    def _waiting(self, queue: str) -> list[JobRecord]:
        """The waiting jobs of `queue` (any runnable status, due or not), in claim order."""
        return self._select(
            lambda r: r.queue == queue and r.status in RUNNABLE_STATUSES, _claim_order, None
        )

    def _update(self, row: JobRecord, now: datetime, **changes: Any) -> JobRecord:
        self._jobs[row.jid] = row = replace(row, updated_at=now, **changes)
        return row

    def _insert(self, now: datetime, **columns: Any) -> None:
        row = {**_FRESH, **_NOT_DEAD, "errors": [], "created_at": now, "updated_at": now}
        self._jobs[columns["jid"]] = JobRecord(**{**row, **columns}, seq=self._next_seq)
        self._next_seq += 1

    def _count(self, queue: str, counter: str) -> None:
        totals = self._counters.setdefault(queue, {})
        totals[counter] = totals.get(counter, 0) + 1

    def _fenced(self, jid: UUID, attempt: int | None, worker_id: str | None) -> JobRecord | None:
        """The running row a completion or failure applies to; None when it is stale."""
        row = self._jobs.get(jid)
        if row is None or row.status is not _RUNNING:
            return None
        fenced_out = attempt not in (None, row.attempt) or worker_id not in (None, row.worker_id)
        return None if fenced_out else row

    def _lease(self, lease: float | None) -> timedelta:
        if lease is not None:
            return timedelta(seconds=check.seconds(lease, what="lease", allow_zero=False))
        return timedelta(seconds=self.lease_seconds)

    # -- enqueue, claim, lease -------------------------------------------------------------

    def enqueue_jobs(
        self,
        jobs: Sequence[NewJob],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        connection: Any = None,
    ) -> list[UUID]:
        check.positive_int(batch_size, what="batch_size")
        if connection is not None:
            raise TypeError("MemoryStore cannot join a database transaction; pass connection=None")
        jobs = _require(jobs, NewJob, "enqueue_jobs")
        with self._lock:
            # Check every jid before inserting any, so a duplicate stores nothing at all.
            seen: set[UUID] = set()
            for job in jobs:
                if job.jid in self._jobs or job.jid in seen:
                    raise DuplicateJobError(
                        f"a job with jid {job.jid} is already stored; "
                        "nothing of this batch was written"
                    )
                seen.add(job.jid)
            now = self.now()
            result = self._place_unique(jobs)  # raises before anything is stored
            for job in jobs:
                if result[job.jid] != job.jid:
                    continue  # a duplicate unique job: the holder's jid stands in for it
                expires_at = _utc(job.expires_at, "expires_at")
                if expires_at is None and job.expires_in is not None:
                    expires_at = now + timedelta(seconds=job.expires_in)
                self._insert(
                    now,
                    jid=job.jid,
                    queue=job.queue,
                    job_type=job.job_type,
                    args=json.loads(job.args_json),  # what a JSONB column gives back
                    status=job.status,
                    priority=job.priority,
                    run_at=_utc(job.run_at, "run_at") or now + timedelta(seconds=job.delay),
                    max_retries=job.max_retries,
                    expires_at=expires_at,
                    unique_key=job.unique_key,
                )
            return [result[job.jid] for job in jobs]

    def claim_jobs(
        self,
        queue: str,
        worker_id: str,
        limit: int,
        *,
        lease: float | None = None,
        started: bool | None = None,
    ) -> list[JobRecord]:
        queue = check.queue_name(queue, existing=True)
        check.worker_id(worker_id)
        check.positive_int(limit, what="limit")
        checked_started(started)
        lease_for = self._lease(lease)
        with self._lock:
            now = self.now()
            picked = self._select(
                lambda r: r.queue == queue and _runnable(r, now), _claim_order, limit
            )
            claim = {
                "status": _RUNNING,
                "worker_id": worker_id,
                "lease_expires_at": now + lease_for,
                "started": started,
            }
            claimed = [self._update(r, now, attempt=r.attempt + 1, **claim) for r in picked]
            # As claim_jobs.sql: a claim hands back the last error, not the whole history.
            return [replace(self._out(r), errors=[]) for r in claimed]

    def renew_leases(
        self,
        worker_id: str,
        jids: Sequence[UUID],
        *,
        lease: float | None = None,
        unstarted: Sequence[UUID] = (),
    ) -> set[UUID]:
        check.worker_id(worker_id)
        wanted = set(_require(jids, UUID, "renew_leases"))
        waiting = set(_require(unstarted, UUID, "renew_leases"))
        lease_for = self._lease(lease)
        with self._lock:
            now = self.now()
            held = [
                row
                for row in map(self._jobs.get, wanted)
                if row and row.status is _RUNNING and row.worker_id == worker_id
            ]
            for row in held:
                # The SQL leaves updated_at alone here: a heartbeat is not a state change.
                # Started is sticky within an attempt.
                started = row.started is True or row.jid not in waiting
                self._jobs[row.jid] = replace(
                    row, lease_expires_at=now + lease_for, started=started
                )
            return {row.jid for row in held}

    def release_jobs(
        self,
        worker_id: str,
        jids: Sequence[UUID] | None = None,
        *,
        queue: str | None = None,
        limit: int | None = None,
        keep: Sequence[UUID] | None = None,
    ) -> list[UUID]:
        if jids is not None and keep is not None:
            raise ValueError(RELEASE_JIDS_OR_KEEP)
        check.worker_id(worker_id)
        wanted = None if jids is None else set(_require(jids, UUID, "release_jobs"))
        kept = None if keep is None else set(_require(keep, UUID, "release_jobs"))
        if queue is not None:
            queue = check.queue_name(queue, existing=True)
        if limit is not None:
            check.non_negative_int(limit, what="limit")

        def chosen(r: JobRecord) -> bool:
            # As release_jobs.sql: the named jids, all but `keep`, or the unstarted ones.
            if wanted is not None:
                return r.jid in wanted
            if kept is not None:
                return r.jid not in kept
            return r.started is False

        ttl = timedelta(seconds=self.dead_letter_ttl_seconds)
        with self._lock:
            now = self.now()
            held = self._select(
                lambda r: (
                    r.status is _RUNNING
                    and r.worker_id == worker_id
                    and (queue is None or r.queue == queue)
                    and chosen(r)
                ),
                # The most recent claims go back first (a claim sets updated_at), so the
                # worker keeps its oldest ones.
                lambda r: (_LATEST - r.updated_at, -r.seq),
                limit,
            )
            for row in held:
                # The job keeps its place (run_at, seq) and its attempt (the fencing token);
                # the run spends no budget. A pending cancel makes it dead instead.
                redrive = row.redrive_attempt + 1
                if row.cancel_requested_at is not None:
                    state = _dead("cancelled", now, ttl)
                    self._count(row.queue, "dead")
                elif row.attempt - redrive > 0:
                    state = {"status": JobStatus.RETRYING}
                else:
                    state = {"status": JobStatus.ENQUEUED}
                self._update(row, now, redrive_attempt=redrive, started=None, **state, **_UNCLAIMED)
            return [row.jid for row in held]

    def hand_back_jobs(
        self,
        hand_backs: Sequence[HandBack],
        *,
        grace: float | None = None,
        dead_letter_ttl: float | None = None,
    ) -> dict[UUID, JobStatus]:
        hand_backs = checked_hand_backs(hand_backs)
        grace_s = checked_grace(grace, self.unrunnable_grace_seconds)
        ttl = timedelta(
            seconds=self.dead_letter_ttl_seconds
            if dead_letter_ttl is None
            else check.seconds(dead_letter_ttl, what="dead_letter_ttl", allow_zero=False)
        )
        changed: dict[UUID, JobStatus] = {}
        with self._lock:
            now = self.now()
            for hand_back in hand_backs:
                row = self._fenced(hand_back.jid, hand_back.attempt, hand_back.worker_id)
                if row is None:
                    continue
                row = self._hand_back(row, hand_back, now, grace_s, ttl)
                changed[row.jid] = row.status
            return changed

    def _hand_back(
        self, row: JobRecord, hand_back: HandBack, now: datetime, grace: float, ttl: timedelta
    ) -> JobRecord:
        """One row of hand_back_jobs.sql."""
        error = dict(hand_back.error)
        last_type = (row.last_error or {}).get("error_type")
        since = row.unrunnable_since if last_type == "unrunnable" else None
        began = since or now
        lasted = (now - began).total_seconds()
        redrive = row.redrive_attempt + 1
        changes: dict[str, Any] = {"redrive_attempt": redrive, "unrunnable_since": began}
        if row.cancel_requested_at is not None:
            changes.update(_dead("cancelled", now, ttl))
        elif lasted >= grace:
            changes.update(_dead(unrunnable_dead_reason(hand_back.reason, grace), now, ttl))
        else:
            wait = min(UNRUNNABLE_MAX_BACKOFF, max(UNRUNNABLE_MIN_BACKOFF, lasted), grace - lasted)
            retried = row.attempt - redrive > 0
            changes["status"] = JobStatus.RETRYING if retried else JobStatus.SCHEDULED
            changes["run_at"] = now + timedelta(seconds=wait)
        dead = changes.get("status") is _DEAD
        if dead:
            self._count(row.queue, "dead")
        if since is None or dead:
            changes.update(_error_changes(row, error))  # a spell's first and last entries
        else:
            changes.update(last_error=error, **_UNCLAIMED)
        return self._update(row, now, started=None, **changes)

    # -- finishing runs --------------------------------------------------------------------

    def complete_jobs(self, completions: Sequence[Completion]) -> list[UUID]:
        completions = _require(completions, Completion, "complete_jobs")
        with self._lock:
            now = self.now()
            finished = []
            for c in completions:
                row = self._fenced(c.jid, c.attempt, c.worker_id)
                if row is None:
                    continue
                if self.keep_completed_seconds is None:
                    del self._jobs[c.jid]
                else:
                    done = JobStatus.COMPLETED
                    self._update(row, now, status=done, finished_at=now, **_UNCLAIMED)
                self._count(row.queue, "completed")
                self._count_completed(row.queue, now)
                finished.append(c.jid)
            return finished

    def fail_jobs(
        self, failures: Sequence[Failure], *, dead_letter_ttl: float | None = None
    ) -> dict[UUID, JobStatus]:
        failures = _require(failures, Failure, "fail_jobs")
        ttl = timedelta(
            seconds=self.dead_letter_ttl_seconds
            if dead_letter_ttl is None
            else check.seconds(dead_letter_ttl, what="dead_letter_ttl", allow_zero=False)
        )
        with self._lock:
            now = self.now()
            changed: dict[UUID, JobStatus] = {}
            for f in failures:
                row = self._fenced(f.jid, f.attempt, f.worker_id)
                if row is None:
                    continue
                # The error round-trips through JSON, as it would through a JSONB column.
                error = _error_changes(row, json.loads(json.dumps(f.error)))
                # A job whose cancel was asked for is never retried (as fail_jobs.sql).
                cancelled = row.cancel_requested_at is not None
                if f.retry_in is not None and _has_runs_left(row) and not cancelled:
                    due = now + timedelta(seconds=f.retry_in)
                    retrying = JobStatus.RETRYING
                    row = self._update(row, now, status=retrying, run_at=due, **error, **_NOT_DEAD)
                    self._count(row.queue, "retried")
                else:
                    reason = f.dead_reason  # as the SQL: only NULL falls back to the default
                    if reason is None and cancelled:
                        reason = "cancelled"
                    elif reason is None:
                        reason = "retries exhausted" if f.retry_in is not None else "not retried"
                    row = self._update(row, now, **error, **_dead(reason, now, ttl))
                    self._count(row.queue, "dead")
                changed[row.jid] = row.status
            return changed

    # -- maintenance -----------------------------------------------------------------------

    def rescue_expired_leases(self, queue: str | None = None, *, limit: int = 1000) -> list[UUID]:
        if queue is not None:
            queue = check.queue_name(queue, existing=True)
        check.positive_int(limit, what="limit")
        ttl = timedelta(seconds=self.dead_letter_ttl_seconds)
        with self._lock:
            now = self.now()
            lost = self._select(
                lambda r: (
                    r.status is _RUNNING
                    and r.lease_expires_at is not None
                    and r.lease_expires_at < now
                    and (queue is None or r.queue == queue)
                ),
                lambda r: (r.lease_expires_at, r.seq),
                limit,
            )
            for row in lost:
                outcome = _rescue_outcome(row)
                unstarted = outcome == "unstarted"
                error = _error_changes(
                    row,
                    {
                        "error_type": "lease_expired_unstarted" if unstarted else "lease_expired",
                        "message": f"lease of worker {row.worker_id} expired during attempt "
                        f"{row.attempt}" + (", before the job started" if unstarted else ""),
                        "attempt": row.attempt,
                        "worker_id": row.worker_id,
                    },
                )
                # The attempt is kept, so a late finish of the lost run is fenced out.
                state: dict[str, Any] = {"started": None}
                if outcome == "cancelled":
                    state.update(_dead("cancelled", now, ttl))
                elif outcome == "dead":
                    state.update(_dead("lease expired on the last attempt", now, ttl))
                else:
                    state.update(status=JobStatus.ENQUEUED, **_NOT_DEAD)
                if unstarted:
                    state["redrive_attempt"] = row.redrive_attempt + 1  # spends no budget
                self._update(row, now, **error, **state)
                if state["status"] is _DEAD:
                    self._count(row.queue, "dead")
                self._count(row.queue, "rescued")
            return [row.jid for row in lost]

    def expire_waiting_jobs(self, *, limit: int = 1000) -> list[UUID]:
        check.positive_int(limit, what="limit")
        ttl = timedelta(seconds=self.dead_letter_ttl_seconds)
        with self._lock:
            now = self.now()
            overdue = self._select(
                lambda r: r.status in RUNNABLE_STATUSES and _expired(r, now),
                lambda r: (r.expires_at, r.seq),
                limit,
            )
            for row in overdue:
                assert row.expires_at is not None
                # The same fixed UTC form as expire_waiting_jobs.sql, whatever the server TimeZone.
                at = row.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                message = f"job expired at {at} before it ran"
                error = _error_changes(row, {"error_type": "expired", "message": message})
                self._update(row, now, **error, **_dead("expired", now, ttl))
                self._count(row.queue, "expired")
            return [row.jid for row in overdue]

    def purge_dead(self, *, limit: int = 1000) -> int:
        check.positive_int(limit, what="limit")
        with self._lock:
            return self._delete_passed(_DEAD, "dead_expires_at", self.now(), limit)

    def prune_completed(self, *, limit: int = 1000) -> int:
        check.positive_int(limit, what="limit")
        if self.keep_completed_seconds is None:
            return 0
        with self._lock:
            cutoff = self.now() - timedelta(seconds=self.keep_completed_seconds)
            return self._delete_passed(JobStatus.COMPLETED, "finished_at", cutoff, limit)

    def _delete_passed(self, status: JobStatus, column: str, cutoff: datetime, limit: int) -> int:
        """Delete rows in `status` whose `column` is at or before `cutoff`, oldest first."""

        def passed(r: JobRecord) -> bool:
            # A NULL time never passes, as in SQL (a completed row upserted by hand has none).
            value = getattr(r, column)
            return r.status is status and value is not None and value <= cutoff

        rows = self._select(passed, lambda r: (getattr(r, column), r.seq), limit)
        return sum(1 for row in rows if self._jobs.pop(row.jid, None) is not None)

    # -- the seed's state changes ----------------------------------------------------------

    def upsert_job(
        self,
        document: dict[str, Any],
        status: JobStatus,
        *,
        delay: float | None = None,
        run_at: datetime | None = None,
        dead_until: datetime | None = None,
        dead_reason: str | None = None,
    ) -> None:
        # The insert values are validated even for a known jid, as the SQL store's INSERT ...
        # ON CONFLICT needs them either way: bad input fails the same way in both stores.
        new = _insert_values(document)
        status = JobStatus(status)
        # PostgreSQL's check constraints refuse these; refuse them before anything changes.
        if status is _RUNNING:
            raise ValueError("upsert_job cannot make a job running: only a claim can")
        if status is _DEAD and dead_until is None:
            raise ValueError("upsert_job needs dead_until to make a job dead")
        delay_s = 0.0 if delay is None else check.seconds(delay, what="delay")
        run_at = _utc(run_at, "run_at")
        dead_until = _utc(dead_until, "dead_until")
        with self._lock:
            now = self.now()
            target = run_at or now + timedelta(seconds=delay_s)
            dead = status is _DEAD
            state: dict[str, Any] = {
                "status": status,
                "dead_reason": dead_reason if dead else None,
                "dead_expires_at": dead_until,  # as the SQL: stored whatever the status
                "finished_at": now if dead else None,
            }
            row = self._jobs.get(new["jid"])
            waking = status is not _DEAD and (
                row is None or row.status in (_DEAD, JobStatus.COMPLETED)
            )
            if waking and row is not None and row.unique_key is not None:
                holder = self._unique_holder(row.job_type, row.unique_key)
                if holder is not None and holder != row.jid:
                    # PostgreSQL's jobs_unique_key_idx refuses this UPDATE the same way.
                    raise DuplicateJobError(
                        "that would make a second waiting or running job with the same unique "
                        f"key ({row.job_type}, {row.unique_key}); nothing was changed"
                    )
            if row is None:
                self._insert(now, **new, **state, run_at=target)
            else:
                # Only a reschedule moves the job; args, queue, attempt and errors stay.
                moved = target if status is JobStatus.SCHEDULED else row.run_at
                self._update(row, now, **state, run_at=moved, **_UNCLAIMED)

    def due_jobs(self, at: datetime, limit: int, *, take: bool) -> list[JobRecord]:
        check.aware_datetime(at, what="at")
        check.positive_int(limit, what="limit")
        with self._lock:
            now = self.now()
            # The caller's clock may ask for an earlier instant than the store's, never later.
            horizon = min(at, now)
            due = self._select(
                lambda r: r.status in _DELAYED and r.run_at <= horizon,
                lambda r: (r.run_at, r.seq),
                limit,
            )
            if take:
                due = [self._update(r, now, status=JobStatus.ENQUEUED) for r in due]
            return [self._out(r) for r in due]

    # -- reading and deleting --------------------------------------------------------------

    def get_job(self, jid: UUID) -> JobRecord | None:
        _require([jid], UUID, "get_job")
        with self._lock:
            row = self._jobs.get(jid)
            return None if row is None else self._out(row)

    def list_queue(self, queue: str, *, offset: int, limit: int) -> list[JobRecord]:
        queue = check.queue_name(queue, existing=True)
        check.non_negative_int(offset, what="offset")
        check.positive_int(limit, what="limit")
        with self._lock:
            rows = self._waiting(queue)[offset : offset + limit]
            return [self._out(r) for r in rows]

    def count_jobs(self, queue: str, status: JobStatus, *, due_only: bool = False) -> int:
        queue = check.queue_name(queue, existing=True)
        status = JobStatus(status)
        with self._lock:
            now = self.now()
            return sum(
                1
                for r in self._jobs.values()
                if r.queue == queue and r.status is status and (not due_only or r.run_at <= now)
            )

    def delete_jobs(self, jids: Sequence[UUID]) -> int:
        unique = set(_require(jids, UUID, "delete_jobs"))
        with self._lock:
            return sum(1 for jid in unique if self._jobs.pop(jid, None) is not None)

    def clear_waiting(self, queue: str) -> int:
        queue = check.queue_name(queue, existing=True)
        with self._lock:
            waiting = self._waiting(queue)
            for row in waiting:
                del self._jobs[row.jid]
            return len(waiting)

    def queue_stats(self) -> dict[str, QueueStats]:
        with self._lock:
            now = self.now()
            held: dict[str, dict[str, int]] = {}
            oldest: dict[str, datetime] = {}
            for r in self._jobs.values():
                column = r.status.value
                if r.status in _WAITING:
                    column = "waiting" if r.run_at <= now else "due_later"
                    if column == "waiting":
                        oldest[r.queue] = min(oldest.get(r.queue, r.run_at), r.run_at)
                counts = held.setdefault(r.queue, {})
                counts[column] = counts.get(column, 0) + 1
            return {
                queue: QueueStats(
                    queue=queue,
                    **{c: held.get(queue, {}).get(c, 0) for c in _STAT_COLUMNS},
                    oldest_waiting_age=(
                        (now - oldest[queue]).total_seconds() if queue in oldest else None
                    ),
                    totals={n: self._counters.get(queue, {}).get(n, 0) for n in COUNTER_NAMES},
                    paused=queue in self._paused,
                    estimated=False,  # every count here is exact
                )
                for queue in sorted(held.keys() | self._counters.keys() | self._paused)
            }


def _insert_values(document: dict[str, Any]) -> dict[str, Any]:
    """The validated columns a job document gives when its jid is new (as the SQL store)."""
    if not isinstance(document, dict):
        raise TypeError(f"job document must be a dict, got {type(document).__name__}")
    if "jid" not in document:
        raise ValueError("job document lacks its 'jid'")
    return {
        "jid": _require([document["jid"]], UUID, "upsert_job")[0],
        "queue": check.queue_name(document.get("queue", "default"), what="job['queue']"),
        "job_type": check.job_type(document.get("job_type")),
        "args": json.loads(to_json_object(document.get("args", {}), what="job['args']")),
        "priority": check.priority(document.get("priority", 0)),
        "attempt": check.attempt_count(document.get("attempt", 0), what="job['attempt']"),
        "max_retries": check.attempt_count(
            document.get("max_retries", 3), what="job['max_retries']"
        ),
    }
