"""MemoryStore's operator methods: search, retry and re-drive, cancel, pause, schedule ticks.

A mixin of MemoryStore (memory.py), split out to keep each module small. Like the rest of
MemoryStore it mirrors the PostgreSQL store's SQL statement by statement (retry_jobs.sql,
cancel_jobs.sql, enqueue_tick.sql, ...), under the store's one lock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from .. import _validation as check
from ..errors import DuplicateJobError
from ..status import RUNNABLE_STATUSES, JobStatus
from . import presence
from .records import JobRecord, NewJob, WorkerInfo

_UNIQUE_WHILE = (*RUNNABLE_STATUSES, JobStatus.RUNNING)


class MemoryOperations:
    # Provided by MemoryStore.
    _lock: threading.RLock
    _jobs: dict[UUID, JobRecord]
    _paused: set[str]
    _ticks: dict[str, dict[datetime, UUID]]
    _workers: dict[str, WorkerInfo]
    _throughput: dict[tuple[str, datetime], int]
    dead_letter_ttl_seconds: float
    now: Callable[[], datetime]
    _select: Callable[..., list[JobRecord]]
    _update: Callable[..., JobRecord]
    _out: Callable[[JobRecord], JobRecord]
    _insert: Callable[..., None]

    # -- unique jobs ---------------------------------------------------------------------------

    def _unique_holder(self, job_type: str, key: str) -> UUID | None:
        for row in self._jobs.values():
            if row.unique_key == key and row.job_type == job_type and row.status in _UNIQUE_WHILE:
                return row.jid
        return None

    def _place_unique(self, jobs: Sequence[NewJob]) -> dict[UUID, UUID]:
        """For each new job, the jid that will stand for it: its own, or the jid of the job
        already holding its unique key (earlier in this batch included). Raises for a
        duplicate whose on_duplicate is "raise", before anything is stored."""
        placed: dict[UUID, UUID] = {}
        claimed: dict[tuple[str, str], UUID] = {}
        for job in jobs:
            if job.unique_key is None:
                placed[job.jid] = job.jid
                continue
            key = (job.job_type, job.unique_key)
            holder = claimed.get(key) or self._unique_holder(*key)
            if holder is None:
                claimed[key] = placed[job.jid] = job.jid
            elif job.on_duplicate == "raise":
                raise DuplicateJobError(
                    f"a {job.job_type} job with unique_key {job.unique_key!r} is already "
                    f"waiting or running (jid {holder}); nothing was enqueued"
                )
            else:
                placed[job.jid] = holder
        return placed

    # -- operators -------------------------------------------------------------------------

    def search_jobs(
        self,
        *,
        queue: str | None = None,
        status: JobStatus | None = None,
        job_type: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[JobRecord]:
        if queue is not None:
            queue = check.queue_name(queue, existing=True)
        wanted = None if status is None else JobStatus(status)
        if job_type is not None:
            job_type = check.job_type(job_type, existing=True)
        check.non_negative_int(offset, what="offset")
        check.positive_int(limit, what="limit")
        with self._lock:
            rows = self._select(
                lambda r: (
                    (queue is None or r.queue == queue)
                    and (wanted is None or r.status is wanted)
                    and (job_type is None or r.job_type == job_type)
                ),
                lambda r: -r.seq,
                None,
            )
            return [self._out(r) for r in rows[offset : offset + limit]]

    def _redrive(self, row: JobRecord, now: datetime) -> bool:
        """Re-drive a dead job; False (and no change) when its unique key is held."""
        if row.unique_key is not None and self._unique_holder(row.job_type, row.unique_key):
            return False
        expired = row.expires_at is not None and row.expires_at <= now
        self._update(
            row,
            now,
            status=JobStatus.ENQUEUED,
            redrive_attempt=row.attempt,
            unrunnable_since=None,  # a job that died unrunnable gets a fresh grace
            run_at=min(row.run_at, now),
            expires_at=None if expired else row.expires_at,
            dead_reason=None,
            dead_expires_at=None,
            finished_at=None,
        )
        return True

    def retry_jobs(self, jids: Sequence[UUID]) -> list[UUID]:
        wanted = set(_uuids(jids, "retry_jobs"))
        with self._lock:
            now = self.now()
            rows = self._select(
                lambda r: (
                    r.jid in wanted
                    and r.status in (JobStatus.DEAD, JobStatus.SCHEDULED, JobStatus.RETRYING)
                ),
                lambda r: r.seq,
                None,
            )
            changed = []
            for row in rows:
                if row.status is not JobStatus.DEAD:
                    self._update(row, now, run_at=min(row.run_at, now))
                elif not self._redrive(row, now):
                    continue
                changed.append(row.jid)
            return changed

    def retry_dead(self, *, queue: str | None = None, limit: int = 1000) -> list[UUID]:
        if queue is not None:
            queue = check.queue_name(queue, existing=True)
        check.positive_int(limit, what="limit")
        with self._lock:
            now = self.now()
            rows = self._select(
                lambda r: r.status is JobStatus.DEAD and (queue is None or r.queue == queue),
                lambda r: (r.finished_at or now, r.seq),
                limit,
            )
            return [row.jid for row in rows if self._redrive(row, now)]

    def cancel_jobs(
        self, jids: Sequence[UUID], *, dead_letter_ttl: float | None = None
    ) -> dict[UUID, str]:
        wanted = set(_uuids(jids, "cancel_jobs"))
        ttl = (
            self.dead_letter_ttl_seconds
            if dead_letter_ttl is None
            else check.seconds(dead_letter_ttl, what="dead_letter_ttl", allow_zero=False)
        )
        with self._lock:
            now = self.now()
            outcome: dict[UUID, str] = {}
            for jid in wanted:
                row = self._jobs.get(jid)
                if row is None:
                    continue
                if row.status in RUNNABLE_STATUSES:
                    self._update(
                        row,
                        now,
                        status=JobStatus.DEAD,
                        dead_reason="cancelled",
                        dead_expires_at=now + timedelta(seconds=ttl),
                        finished_at=now,
                    )
                    outcome[jid] = "cancelled"
                elif row.status is JobStatus.RUNNING:
                    # As cancel_jobs.sql: updated_at stays the claim time.
                    self._jobs[jid] = replace(
                        row, cancel_requested_at=row.cancel_requested_at or now
                    )
                    outcome[jid] = "requested"
            return outcome

    def cancel_requested(self, worker_id: str, jids: Sequence[UUID]) -> set[UUID]:
        check.worker_id(worker_id)
        wanted = set(_uuids(jids, "cancel_requested"))
        with self._lock:
            return {
                jid
                for jid in wanted
                if (row := self._jobs.get(jid)) is not None
                and row.status is JobStatus.RUNNING
                and row.worker_id == worker_id
                and row.cancel_requested_at is not None
            }

    def delete_dead(self, *, queue: str | None = None, limit: int = 1000) -> int:
        if queue is not None:
            queue = check.queue_name(queue, existing=True)
        check.positive_int(limit, what="limit")
        with self._lock:
            rows = self._select(
                lambda r: r.status is JobStatus.DEAD and (queue is None or r.queue == queue),
                lambda r: r.seq,
                limit,
            )
            for row in rows:
                del self._jobs[row.jid]
            return len(rows)

    def pause_queue(self, queue: str) -> bool:
        queue = check.queue_name(queue)
        with self._lock:
            was_running = queue not in self._paused
            self._paused.add(queue)
            return was_running

    def resume_queue(self, queue: str) -> bool:
        queue = check.queue_name(queue, existing=True)
        with self._lock:
            was_paused = queue in self._paused
            self._paused.discard(queue)
            return was_paused

    def paused_queues(self) -> set[str]:
        with self._lock:
            return set(self._paused)

    # -- workers and throughput --------------------------------------------------------------

    def worker_seen(
        self,
        worker_id: str,
        *,
        host: str,
        pid: int,
        queues: Sequence[str],
        heartbeat_interval: float = presence.DEFAULT_HEARTBEAT_INTERVAL,
    ) -> None:
        check.worker_id(worker_id)
        names = tuple(check.queue_name(q) for q in queues)
        interval = check.seconds(heartbeat_interval, what="heartbeat_interval", allow_zero=False)
        with self._lock:
            now = self.now()
            known = self._workers.get(worker_id)
            started = now if known is None else known.started_at
            self._workers[worker_id] = WorkerInfo(
                worker_id, str(host), int(pid), names, started, now, interval
            )

    def worker_gone(self, worker_id: str) -> None:
        check.worker_id(worker_id)
        with self._lock:
            self._workers.pop(worker_id, None)

    def live_workers(self, *, within: float | None = None) -> list[WorkerInfo]:
        fixed = None if within is None else check.seconds(within, what="within")
        with self._lock:
            now = self.now()

            def alive(w: WorkerInfo) -> bool:
                window = presence.alive_window(w.heartbeat_interval) if fixed is None else fixed
                return now - w.last_seen_at < timedelta(seconds=window)

            live = [w for w in self._workers.values() if alive(w)]
            return sorted(live, key=lambda w: (w.started_at, w.worker_id))

    def prune_workers(self, *, limit: int = 1000) -> int:
        check.positive_int(limit, what="limit")
        with self._lock:
            now = self.now()
            silent = [
                w
                for w in self._workers.values()
                if now - w.last_seen_at
                > timedelta(seconds=presence.prune_after(w.heartbeat_interval))
            ]
            silent.sort(key=lambda w: w.last_seen_at)
            for worker in silent[:limit]:
                del self._workers[worker.worker_id]
            return len(silent[:limit])

    def completed_per_minute(self, *, since: float = 3600.0) -> dict[str, dict[datetime, int]]:
        seconds = check.seconds(since, what="since")
        with self._lock:
            start = _minute(self.now() - timedelta(seconds=seconds))
            out: dict[str, dict[datetime, int]] = {}
            for (queue, minute), count in sorted(self._throughput.items(), key=lambda kv: kv[0][1]):
                if minute >= start:
                    out.setdefault(queue, {})[minute] = count
            return out

    def _count_completed(self, queue: str, now: datetime) -> None:
        key = (queue, _minute(now))
        self._throughput[key] = self._throughput.get(key, 0) + 1

    def prune_history(self, *, older_than: float = 86400.0) -> int:
        cutoff_s = check.seconds(older_than, what="older_than")
        with self._lock:
            cutoff = self.now() - timedelta(seconds=cutoff_s)
            old = [k for k in self._throughput if k[1] < cutoff]
            silent = [w for w, info in self._workers.items() if info.last_seen_at < cutoff]
            for key in old:
                del self._throughput[key]
            for worker_id in silent:
                del self._workers[worker_id]
            return len(old) + len(silent)

    # -- schedule ticks --------------------------------------------------------------------

    def enqueue_tick(self, schedule: str, tick: datetime, job: NewJob) -> bool:
        check.queue_name(schedule, what="schedule name")
        tick = check.aware_datetime(tick, what="tick").astimezone(UTC)
        if not isinstance(job, NewJob):
            raise TypeError(f"enqueue_tick takes a NewJob, got {type(job).__name__}")
        with self._lock:
            ticks = self._ticks.setdefault(schedule, {})
            # As enqueue_tick.sql: a tick at or before the newest recorded one (pruned or not)
            # is done already.
            if ticks and tick <= max(ticks):
                return False
            ticks[tick] = job.jid
            if job.unique_key is not None and self._unique_holder(job.job_type, job.unique_key):
                return False  # the tick is done; its job is skipped, as ON CONFLICT DO NOTHING
            now = self.now()
            self._insert(
                now,
                jid=job.jid,
                queue=job.queue,
                job_type=job.job_type,
                args=json.loads(job.args_json),
                status=JobStatus.ENQUEUED,
                priority=job.priority,
                run_at=now,
                max_retries=job.max_retries,
                expires_at=None
                if job.expires_in is None
                else now + timedelta(seconds=job.expires_in),
                unique_key=job.unique_key,
            )
            return True

    def last_ticks(self) -> dict[str, datetime]:
        with self._lock:
            return {name: max(ticks) for name, ticks in self._ticks.items() if ticks}

    def prune_ticks(self, *, older_than: float) -> int:
        cutoff_s = check.seconds(older_than, what="older_than")
        with self._lock:
            cutoff = self.now() - timedelta(seconds=cutoff_s)
            pruned = 0
            for ticks in self._ticks.values():
                latest = max(ticks, default=None)
                for tick in [t for t in ticks if t < cutoff and t != latest]:
                    del ticks[tick]
                    pruned += 1
            return pruned


def _minute(moment: datetime) -> datetime:
    """date_trunc('minute', moment), as the SQL buckets completions."""
    return moment.replace(second=0, microsecond=0)


def _uuids(values: Sequence[Any], method: str) -> list[UUID]:
    values = list(values)
    for value in values:
        if not isinstance(value, UUID):
            raise TypeError(f"{method} takes UUID values, got {value!r}")
    return values
