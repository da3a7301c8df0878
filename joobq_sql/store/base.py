"""The Store contract: JoobQ's Store interface in snake_case, plus what the runtime needs.

The seed's 21 methods (and the older `mark_as_failed`) keep their parameters and return types;
where the seed returns a JSON String we return `str`, the job document of JobRecord.to_json().
They are written here once, on top of a smaller set of abstract primitives (enqueue_jobs,
claim_jobs, complete_jobs, fail_jobs, ...), which each store implements. The runtime talks to
these primitives only, so any Store can run it.
"""

from __future__ import annotations

import socket
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from uuid import UUID

from .. import _validation as check
from ..backoff import exponential_backoff
from ..job import Job, job_class
from ..status import JobStatus
from ._documents import optional_int, optional_str, parse_document, parse_jid
from .presence import DEFAULT_HEARTBEAT_INTERVAL
from .records import (
    Completion,
    Failure,
    JobRecord,
    NewJob,
    QueueStats,
    WorkerInfo,
)
from .table_health import TableHealth
from .unrunnable import DEFAULT_UNRUNNABLE_GRACE, HandBack

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from .postgres.async_store import AsyncStore

#: The worker id of claims made through `dequeue`, which names no worker.
ANONYMOUS_WORKER = "dequeue"

DEFAULT_LEASE = timedelta(seconds=30)
DEFAULT_DEAD_LETTER_TTL = timedelta(days=7)
DEFAULT_BATCH_SIZE = 1000

#: release_jobs' refusal of both a jid list and a keep list.
RELEASE_JIDS_OR_KEEP = (
    "release_jobs takes either jids (release these) or keep (release all but these), not both"
)


class Listening(Protocol):
    """A store's background listener for wake-ups (see Store.listener)."""

    def start(self) -> None: ...

    def stop(self) -> object: ...


def checked_started(started: bool | None) -> bool | None:
    """A claim's `started` mark: None (unknown), False (not started) or True."""
    if started is not None and not isinstance(started, bool):
        raise TypeError(f"started must be True, False or None, got {started!r}")
    return started


def counter_shard(worker_id: str | None, shards: int) -> int:
    """Spread counter updates over `shards` rows, one per worker, so no row is hot."""
    return zlib.crc32((worker_id or "").encode()) % shards


class Store(ABC):
    """Where jobs live. Every method is safe to call from several threads and processes.

    Times: every due-ness, lease and expiry decision uses the store's own clock (PostgreSQL's
    now()), never the caller's, so callers with skewed clocks cannot run jobs early or steal
    leases. Durations are passed in as seconds.
    """

    def __init__(
        self,
        *,
        lease: timedelta | float = DEFAULT_LEASE,
        dead_letter_ttl: timedelta | float = DEFAULT_DEAD_LETTER_TTL,
        keep_completed: timedelta | float | None = None,
    ) -> None:
        #: Seconds a claim holds a job before another worker may rescue it.
        self.lease_seconds = check.seconds(lease, what="lease", allow_zero=False)
        #: Seconds a dead job is kept before the purge removes it.
        self.dead_letter_ttl_seconds = check.seconds(
            dead_letter_ttl, what="dead_letter_ttl", allow_zero=False
        )
        #: Seconds a completed job is kept (None or 0: deleted when it completes).
        self.keep_completed_seconds = (
            None
            if keep_completed is None
            else check.seconds(keep_completed, what="keep_completed") or None
        )
        #: Seconds a job may stay unrunnable, handed back by every claimer, before it goes
        #: dead: the default of hand_back_jobs, and so of the seed API's claims. The runtime
        #: passes its `unrunnable_grace` setting instead.
        self.unrunnable_grace_seconds = DEFAULT_UNRUNNABLE_GRACE

    # ======================================================================================
    # Primitives: each store implements these.
    # ======================================================================================

    @abstractmethod
    def enqueue_jobs(
        self,
        jobs: Sequence[NewJob],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        connection: Any = None,
    ) -> list[UUID]:
        """Insert `jobs` in chunks of `batch_size`, all in one transaction; return their jids.

        Either every job is stored or none is (a duplicate jid raises and stores nothing).
        With `connection` (an SQLAlchemy Connection or Session of the same database) the
        insert joins the caller's transaction: the jobs exist if and only if it commits.
        """

    @abstractmethod
    def claim_jobs(
        self,
        queue: str,
        worker_id: str,
        limit: int,
        *,
        lease: float | None = None,
        started: bool | None = None,
    ) -> list[JobRecord]:
        """Claim up to `limit` runnable jobs of `queue` for `worker_id`, in claim order.

        Runnable: status enqueued, scheduled or retrying, run_at <= now, and not expired (see
        expire_waiting_jobs: a job that has started never expires). Claim order: higher
        priority first, then earlier run_at, then insertion order (FIFO). Each claimed job
        becomes `running` with attempt + 1, the worker id, and a lease until now +
        `lease` seconds (default: the store's lease). Two claimers never get the same job.
        Its `started` mark is `started`: None (unknown, counted as started) for a runtime that
        reports it with its lease renewals, False for claims handed to a caller that may give
        them back unstarted (the seed API's claim_jobs_batch, claim_job, dequeue).
        """

    @abstractmethod
    def renew_leases(
        self,
        worker_id: str,
        jids: Sequence[UUID],
        *,
        lease: float | None = None,
        unstarted: Sequence[UUID] = (),
    ) -> set[UUID]:
        """Extend the leases `worker_id` holds on `jids` to now + `lease`; return the jids it
        still holds (a job missing from the result was rescued, finished or deleted).

        The renewal also records which of them have started: those in `unstarted` wait in
        the worker's buffer (started False), the others run (started True; once True it
        stays so for the attempt). A rescued attempt known not to have started spends no
        retry budget (see rescue_expired_leases); the seed's jid-less release only takes
        unstarted ones."""

    @abstractmethod
    def complete_jobs(self, completions: Sequence[Completion]) -> list[UUID]:
        """Finish running jobs in one statement, fenced (see Completion); return the jids that
        finished. Finished jobs are deleted, or kept as `completed` for `keep_completed`."""

    @abstractmethod
    def fail_jobs(
        self, failures: Sequence[Failure], *, dead_letter_ttl: float | None = None
    ) -> dict[UUID, JobStatus]:
        """Apply failed runs in one statement, fenced (see Failure): each makes exactly one
        state change, to `retrying` or to `dead` (kept for `dead_letter_ttl` seconds). The
        error is stored as `last_error` and appended to the bounded error history. Return the
        new status of each job that changed; a stale failure is absent."""

    @abstractmethod
    def release_jobs(
        self,
        worker_id: str,
        jids: Sequence[UUID] | None = None,
        *,
        queue: str | None = None,
        limit: int | None = None,
        keep: Sequence[UUID] | None = None,
    ) -> list[UUID]:
        """Give back running jobs `worker_id` claimed but did not start, at most `limit`
        (of `queue`); return the released jids.

        Which: with `jids`, those; with `keep`, every running job of the worker whose jid is
        not in `keep` (how a fetcher hands back what a claim whose commit it never saw may
        have claimed); with neither, only jobs the worker reported not started (started is
        False: the seed API's claims, or the buffer a lease renewal reported), most recently
        claimed first. `jids` and `keep` together are refused (ValueError).

        A released job keeps its place in the queue (run_at unchanged) and its attempt (the
        fencing token never decreases, so a stale finish stays fenced out after a reclaim);
        the run spends no retry budget (redrive_attempt + 1). It becomes `retrying` if it has
        charged runs, else `enqueued`, with no worker, lease or started mark. A job whose
        cancel was asked for goes to `dead` with dead_reason "cancelled" instead.
        """

    @abstractmethod
    def hand_back_jobs(
        self,
        hand_backs: Sequence[HandBack],
        *,
        grace: float | None = None,
        dead_letter_ttl: float | None = None,
    ) -> dict[UUID, JobStatus]:
        """Give back running jobs their worker claimed but cannot run (see HandBack), for a
        worker that can; return the new status of each job handed back (a stale hand-back,
        whose attempt or worker no longer holds the row, is absent).

        The claim spends no retry budget (redrive_attempt + 1; the attempt is kept). The job is
        due again after a backoff as long as it has been unrunnable, from 1 s to 60 s and never
        past the end of its grace: `scheduled`, or `retrying` if it has charged runs. Its
        unrunnable_since marks when this spell of hand-backs began (a spell ends when anything
        else becomes its last error: a run failed, its lease was rescued; a re-drive also ends
        it). Once a spell has lasted `grace` seconds (default: unrunnable_grace_seconds; 0:
        at once), the job goes dead instead, with dead_reason "unrunnable for longer than
        <grace>: <reason>", kept for `dead_letter_ttl`. A job whose cancel was asked for goes
        dead with dead_reason "cancelled"."""

    @abstractmethod
    def rescue_expired_leases(self, queue: str | None = None, *, limit: int = 1000) -> list[UUID]:
        """Requeue running jobs whose lease has expired (their worker died or hung). Jobs with
        a live lease are never touched, and the attempt is kept (a late finish is fenced out).

        Each rescued job gets an error entry and:
        - with a pending cancel: goes to `dead` with dead_reason "cancelled";
        - reported not started by its worker (started False): goes back to `enqueued` keeping
          its run_at, without spending its retry budget (redrive_attempt + 1, error type
          `lease_expired_unstarted`), but only once in a row: if its last error already says
          so it is charged as below, so a job that kills its worker cannot loop for free;
        - otherwise (error type `lease_expired`): back to `enqueued` keeping its run_at, or to
          `dead` if that was its last allowed run."""

    @abstractmethod
    def expire_waiting_jobs(self, *, limit: int = 1000) -> list[UUID]:
        """Move waiting jobs past their expires_at that never started to `dead`, dead_reason
        `expired`, at most `limit`, earliest expiry first; return their jids.

        `expires` bounds the wait for a job's first start: a job counts as started once a run of
        it spent retry budget (attempt > redrive_attempt: it failed, or its lease was lost while
        it may have been running), and a started job never expires. A released job, or one
        handed back unstarted, spends none and can still expire.
        """

    @abstractmethod
    def purge_dead(self, *, limit: int = 1000) -> int:
        """Delete dead jobs whose dead_expires_at has passed; return how many."""

    @abstractmethod
    def prune_completed(self, *, limit: int = 1000) -> int:
        """Delete kept completed jobs older than `keep_completed`; return how many."""

    @abstractmethod
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
        """Store the job `document` in `status`, inserting it if its jid is unknown. For
        `scheduled`: run_at is `run_at`, else now + `delay`. For `dead`: purged at
        `dead_until`. Any claim on it is dropped; its stored args are kept."""

    @abstractmethod
    def due_jobs(self, at: datetime, limit: int, *, take: bool) -> list[JobRecord]:
        """Scheduled or retrying jobs with run_at <= min(`at`, now), oldest first, at most
        `limit`. With `take`, they become `enqueued` in the same statement, and concurrent
        callers never get the same job."""

    @abstractmethod
    def get_job(self, jid: UUID) -> JobRecord | None:
        """The job with `jid`, in any state, or None."""

    @abstractmethod
    def list_queue(self, queue: str, *, offset: int, limit: int) -> list[JobRecord]:
        """Waiting jobs of `queue` (any runnable status, due or not) in claim order."""

    @abstractmethod
    def count_jobs(self, queue: str, status: JobStatus, *, due_only: bool = False) -> int:
        """How many jobs of `queue` are in `status` (with `due_only`, only those due now)."""

    @abstractmethod
    def delete_jobs(self, jids: Sequence[UUID]) -> int:
        """Delete jobs in any state; return how many existed."""

    @abstractmethod
    def clear_waiting(self, queue: str) -> int:
        """Delete every waiting job of `queue`; running and dead ones stay. Return how many."""

    @abstractmethod
    def queue_stats(self) -> dict[str, QueueStats]:
        """Per queue: what it holds now, and its running totals."""

    @abstractmethod
    def search_jobs(
        self,
        *,
        queue: str | None = None,
        status: JobStatus | None = None,
        job_type: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[JobRecord]:
        """Jobs matching every given filter, newest first (insertion order), one page."""

    @abstractmethod
    def retry_jobs(self, jids: Sequence[UUID]) -> list[UUID]:
        """Make jobs run now; return the jids that changed. A dead job is re-driven into its
        own queue with a fresh retry budget (retries count again from its current attempt;
        the attempt number keeps rising, so stale finishes stay fenced out) and keeps its error
        history; an expired one gets no expiry. A scheduled or retrying job becomes due now.
        Jobs in other states are left alone."""

    @abstractmethod
    def retry_dead(self, *, queue: str | None = None, limit: int = 1000) -> list[UUID]:
        """Re-drive up to `limit` dead jobs (of `queue`), oldest death first (see retry_jobs)."""

    @abstractmethod
    def cancel_jobs(
        self, jids: Sequence[UUID], *, dead_letter_ttl: float | None = None
    ) -> dict[UUID, str]:
        """Cancel jobs; return each found job's outcome. Every jid ends in exactly one of:

        - "cancelled": it was waiting (enqueued, scheduled or retrying); it is now `dead` with
          dead_reason "cancelled" and never runs;
        - "requested": it was running; it has its cancel flag, which its worker hands to the
          job at the next heartbeat. Should the run not finish (its worker releases it, or
          dies and the lease is rescued) the job goes `dead` "cancelled", never back to a
          runnable state;
        - absent from the result: no such job, or it had already finished (completed or dead).

        Each job's outcome is decided on its current row under the row's lock: a cancel that
        races a claim, release or finish waits for it and then acts on what it left."""

    @abstractmethod
    def cancel_requested(self, worker_id: str, jids: Sequence[UUID]) -> set[UUID]:
        """Which of `worker_id`'s running `jids` have been asked to cancel."""

    @abstractmethod
    def delete_dead(self, *, queue: str | None = None, limit: int = 1000) -> int:
        """Delete up to `limit` dead jobs (of `queue`) now, expired or not; return how many."""

    @abstractmethod
    def pause_queue(self, queue: str) -> bool:
        """Pause `queue`: workers everywhere stop starting its jobs within a poll interval.
        True if it was running."""

    @abstractmethod
    def resume_queue(self, queue: str) -> bool:
        """Resume a paused `queue`; True if it was paused."""

    @abstractmethod
    def paused_queues(self) -> set[str]:
        """The names of the paused queues."""

    @abstractmethod
    def enqueue_tick(self, schedule: str, tick: datetime, job: NewJob) -> bool:
        """Enqueue `job` (runnable now) for tick `tick` of `schedule`, unless that tick was
        enqueued already, by any process; True if this call enqueued it. A tick at or before
        the schedule's newest recorded tick counts as enqueued already, even when its own
        record was pruned: ticks only move forward. A unique job whose key is still waiting
        or running is skipped, and the tick still counts as done."""

    @abstractmethod
    def last_ticks(self) -> dict[str, datetime]:
        """The latest tick enqueued for each schedule."""

    @abstractmethod
    def prune_ticks(self, *, older_than: float) -> int:
        """Forget ticks older than `older_than` seconds, keeping each schedule's latest."""

    @abstractmethod
    def worker_seen(
        self,
        worker_id: str,
        *,
        host: str,
        pid: int,
        queues: Sequence[str],
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    ) -> None:
        """Record that `worker_id` is alive, runs `queues` and is heard from every
        `heartbeat_interval` seconds (called by its heartbeat)."""

    @abstractmethod
    def worker_gone(self, worker_id: str) -> None:
        """Forget a worker that stopped."""

    @abstractmethod
    def live_workers(self, *, within: float | None = None) -> list[WorkerInfo]:
        """Workers heard from recently, oldest first: by default within a few of each one's
        own heartbeat intervals (`presence.alive_window`), else within `within` seconds."""

    @abstractmethod
    def prune_workers(self, *, limit: int = 1000) -> int:
        """Forget at most `limit` workers silent for long past their heartbeat
        (`presence.prune_after`): ones that died without `worker_gone`. Returns how many."""

    @abstractmethod
    def completed_per_minute(self, *, since: float = 3600.0) -> dict[str, dict[datetime, int]]:
        """Per queue, jobs completed in each minute of the last `since` seconds."""

    @abstractmethod
    def prune_history(self, *, older_than: float = 86400.0) -> int:
        """Forget per-minute throughput and silent workers older than `older_than` seconds."""

    @abstractmethod
    def now(self) -> datetime:
        """The store's clock (PostgreSQL's now())."""

    def close(self) -> None:  # noqa: B027 - optional for stores that hold no resources
        """Release connections. The store is not used afterwards."""

    # ======================================================================================
    # What a driver may offer beyond the primitives. The runtime, the CLI and the web ask
    # for these instead of asking which store they have; the defaults are a store's without.
    # ======================================================================================

    #: True for a store whose calls never wait on I/O (MemoryStore): AsyncStoreAdapter then
    #: calls it inline instead of in a thread.
    never_blocks: ClassVar[bool] = False
    #: The SQL schema the store's tables live in; None for a store without tables.
    schema: str | None = None

    @property
    def sql_engine(self) -> Engine | None:
        """The SQLAlchemy Engine of a store on a SQL database: what its migrations and the
        operator's statistics read. None for a store without one."""
        return None

    def listener(
        self, *, on_wake: Callable[[str], None], on_reconnect: Callable[[], None]
    ) -> Listening | None:
        """A listener (not started) that calls ``on_wake(queue)`` when a job becomes runnable
        on `queue`, and ``on_reconnect()`` after a gap in which wake-ups may have been missed.
        None when the store sends no wake-ups: the runtime then polls."""
        return None

    def async_twin(self, *, pool_size: int) -> AsyncStore | None:
        """A native asyncio store on the same data and settings, with its own `pool_size`
        connections. None when there is none: the runtime then wraps this store in an
        AsyncStoreAdapter."""
        return None

    def hot_table_health(self) -> list[TableHealth]:
        """The figures of the store's high-churn tables, for the runtime's own VACUUM of them
        (maintenance/table_vacuumer.py). Empty for a store without tables to vacuum."""
        return []

    def vacuum_jobs_table(self) -> bool:
        """VACUUM the jobs table; False when another VACUUM holds it (or there is none).
        Raises VacuumRefusedError when this role may not."""
        return False

    # ======================================================================================
    # The seed's interface, in snake_case, built on the primitives.
    # ======================================================================================

    def enqueue(self, job: Job, *, connection: Any = None) -> str:
        """Insert `job` (status enqueued, runnable now) and return its jid."""
        return str(self.enqueue_jobs([NewJob.from_job(job)], connection=connection)[0])

    def enqueue_batch(
        self, jobs: Sequence[Job], batch_size: int = DEFAULT_BATCH_SIZE, *, connection: Any = None
    ) -> None:
        """Insert `jobs` in chunks of `batch_size`, all in one transaction (all or none)."""
        check.positive_int(batch_size, what="batch_size")
        self.enqueue_jobs(
            [NewJob.from_job(job) for job in jobs], batch_size=batch_size, connection=connection
        )

    def dequeue(self, queue_name: str, klass: type[Job] | None = None) -> str | None:
        """Claim the next job of `queue_name` (see claim_job) for no named worker."""
        return self.claim_job(queue_name, ANONYMOUS_WORKER, klass)

    def claim_job(
        self, queue_name: str, worker_id: str, klass: type[Job] | None = None
    ) -> str | None:
        """Claim the next runnable job of `queue_name` for `worker_id`; its JSON, or None."""
        claimed = self.claim_jobs_batch(queue_name, worker_id, klass, 1)
        return claimed[0] if claimed else None

    def claim_jobs_batch(
        self, queue_name: str, worker_id: str, klass: type[Job] | None, batch_size: int
    ) -> list[str]:
        """Claim up to `batch_size` jobs (see claim_jobs); return their JSON documents.

        A claimed row that this process cannot run, because no Job class registers its
        job_type or its args do not fit the class, is handed back for a process that can (see
        hand_back_jobs: uncharged, with a backoff, dead after unrunnable_grace_seconds) and is
        left out of the result: it is never dropped and never blocks the queue. `klass` is
        accepted for compatibility with the seed; decoding uses the registry of Job classes.
        """
        check.positive_int(batch_size, what="batch_size")
        # Not started until the caller says so: release_job_claims_batch may hand them back.
        records = self.claim_jobs(queue_name, worker_id, batch_size, started=False)
        return [record.to_json() for record, _job in self.screen_claimed(records)]

    def screen_claimed(
        self, records: Sequence[JobRecord], *, grace: float | None = None
    ) -> list[tuple[JobRecord, Job]]:
        """Decode claimed records into Job instances; hand back the ones that cannot run (see
        hand_back_jobs). If the hand-back fails, the error propagates and the caller still
        holds every record: the runtime decodes with decode_claimed instead, so that it keeps
        the runnable ones whatever happens to the hand-back."""
        runnable, unrunnable = decode_claimed(records)
        if unrunnable:
            self.hand_back_jobs(unrunnable, grace=grace)
        return runnable

    def release_job_claim(self, queue_name: str, worker_id: str) -> None:
        """Put back one job `worker_id` claimed from `queue_name` but did not start."""
        self.release_job_claims_batch(queue_name, worker_id, 1)

    def release_job_claims_batch(self, queue_name: str, worker_id: str, job_count: int) -> None:
        """Put back up to `job_count` jobs `worker_id` claimed from `queue_name`, unchanged."""
        check.queue_name(queue_name)
        check.non_negative_int(job_count, what="job_count")
        if job_count:
            self.release_jobs(worker_id, queue=queue_name, limit=job_count)

    def mark_job_completed(self, job_json: str, queue_name: str) -> None:
        """Complete the job of `job_json`: fenced by the attempt and worker it carries when it
        came from a claim. A finish for an attempt that is no longer running changes nothing."""
        check.queue_name(queue_name)
        document = parse_document(job_json, what="job_json")
        self.complete_jobs([_completion(document)])

    def cleanup_job(self, job_json: str, queue_name: str) -> None:
        """Take the job out of processing after a run that did not complete: retry it with
        JoobQ's backoff if it has runs left, else dead. One state change, fenced."""
        self.cleanup_jobs_batch([job_json], queue_name)

    def cleanup_jobs_batch(self, job_jsons: Sequence[str], queue_name: str) -> None:
        """cleanup_job for many jobs, in one statement."""
        check.queue_name(queue_name)
        documents = [parse_document(j, what="job_json") for j in job_jsons]
        failures = [
            _failure(d, {"error_type": "cleanup", "message": "run ended without completing"})
            for d in documents
        ]
        if failures:
            self.fail_jobs(failures)

    def mark_as_failed(self, job: Job | str, error_details: dict[str, Any]) -> None:
        """Record a failed run of `job` with `error_details`, and make its one state change:
        `retrying` after JoobQ's backoff if runs are left, else `dead`."""
        document = parse_document(job)
        self.fail_jobs([_failure(document, error_details)])

    def mark_as_dead(self, job: Job | str, expiration_time: int) -> None:
        """Make `job` dead until `expiration_time` (Unix ms), when the purge deletes it."""
        document = parse_document(job)
        check.unix_ms(expiration_time, what="expiration_time")
        self.upsert_job(
            document,
            JobStatus.DEAD,
            dead_until=_from_unix_ms(expiration_time),
            dead_reason=optional_str(document, "dead_reason") or "marked dead",
        )

    def schedule(self, job: Job | str, delay_in_ms: int, delay_set: str = "scheduled") -> None:
        """Make `job` scheduled, due `delay_in_ms` after now (a relative delay, as the seed
        documents it). `delay_set` names JoobQ's Redis set; it is accepted and not needed."""
        check.non_negative_int(delay_in_ms, what="delay_in_ms")
        check.queue_name(delay_set, what="delay_set")
        self.upsert_job(parse_document(job), JobStatus.SCHEDULED, delay=delay_in_ms / 1000)

    def schedule_job(self, job: str, schedule_time: int) -> None:
        """Make the job of JSON `job` scheduled, due at `schedule_time` (Unix ms)."""
        check.unix_ms(schedule_time, what="schedule_time")
        self.upsert_job(
            parse_document(job), JobStatus.SCHEDULED, run_at=_from_unix_ms(schedule_time)
        )

    def fetch_due_jobs(
        self,
        current_time: datetime,
        delay_set: str = "scheduled",
        limit: int = 50,
        remove: bool = True,
    ) -> list[str]:
        """Due scheduled or retrying jobs, oldest first, at most `limit` (see due_jobs). With
        `remove`, they are made `enqueued` atomically. A due job beyond `limit` stays due for
        the next call: it is never lost, and two callers never both take one job."""
        check.aware_datetime(current_time, what="current_time")
        check.queue_name(delay_set, what="delay_set")
        check.positive_int(limit, what="limit")
        return [r.to_json() for r in self.due_jobs(current_time, limit, take=remove)]

    def queue_size(self, queue_name: str) -> int:
        """Jobs of `queue_name` that are runnable now (waiting and due)."""
        queue_name = check.queue_name(queue_name, existing=True)  # a lookup
        return sum(
            self.count_jobs(queue_name, status, due_only=True)
            for status in (JobStatus.ENQUEUED, JobStatus.SCHEDULED, JobStatus.RETRYING)
        )

    def processing_queue_size(self, queue_name: str) -> int:
        """Jobs of `queue_name` that are running."""
        queue_name = check.queue_name(queue_name, existing=True)  # a lookup
        return self.count_jobs(queue_name, JobStatus.RUNNING)

    def list_jobs(self, queue_name: str, page_number: int = 1, page_size: int = 200) -> list[str]:
        """Page `page_number` (from 1) of the waiting jobs of `queue_name`, in claim order.
        A page past the end is empty."""
        queue_name = check.queue_name(queue_name, existing=True)  # a lookup
        check.positive_int(page_number, what="page_number")
        check.positive_int(page_size, what="page_size")
        offset = (page_number - 1) * page_size
        return [r.to_json() for r in self.list_queue(queue_name, offset=offset, limit=page_size)]

    def clear_queue(self, queue_name: str) -> None:
        """Delete the waiting jobs of `queue_name`."""
        queue_name = check.queue_name(queue_name, existing=True)  # a lookup
        self.clear_waiting(queue_name)

    def delete_job(self, job: str | Job | UUID) -> None:
        """Delete the job (any state). An unknown jid is not an error."""
        jid = job if isinstance(job, UUID) else parse_document(job)["jid"]
        self.delete_jobs([jid])

    def move_job_back_to_queue(self, queue_name: str) -> bool:
        """Requeue the jobs of `queue_name` whose lease has expired; True if any moved."""
        check.queue_name(queue_name)
        return bool(self.rescue_expired_leases(queue_name))

    def verify_job_removed_from_processing(self, job_id: str, queue_name: str) -> bool:
        """True when no job with `job_id` is running in `queue_name`."""
        check.queue_name(queue_name)
        record = self.get_job(parse_jid(job_id, what="job_id"))
        return not (
            record is not None and record.status is JobStatus.RUNNING and record.queue == queue_name
        )


def decode_claimed(
    records: Sequence[JobRecord],
) -> tuple[list[tuple[JobRecord, Job]], list[HandBack]]:
    """Split claimed records into (record, Job) pairs this process can run and HandBacks for
    the ones it cannot: no Job class registers the job_type, or the args do not fit the class
    (its from_args or its own constructor raises). No I/O: nothing here can lose a record."""
    runnable: list[tuple[JobRecord, Job]] = []
    unrunnable: list[HandBack] = []
    for record in records:
        try:
            klass = job_class(record.job_type)
            job = klass.from_args(record.args, jid=record.jid, attempt=record.attempt)
        except Exception as exc:  # a user's constructor may raise anything for bad args
            unrunnable.append(
                HandBack(
                    record.jid,
                    record.attempt,
                    record.worker_id or "",
                    record.job_type,
                    str(exc) or type(exc).__name__,
                    error_details(exc, record, error_type="unrunnable"),
                )
            )
        else:
            runnable.append((record, job))
    return runnable, unrunnable


def _from_unix_ms(ms: int) -> datetime:
    from datetime import UTC

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _fence(document: dict[str, Any]) -> int | None:
    """The attempt a document's finish is fenced by (refused when no job can have it)."""
    return check.fence_attempt(optional_int(document, "attempt"), what="job['attempt']")


def _completion(document: dict[str, Any]) -> Completion:
    return Completion(document["jid"], _fence(document), optional_str(document, "worker_id"))


def _failure(document: dict[str, Any], error: dict[str, Any]) -> Failure:
    attempt = _fence(document)
    return Failure(
        document["jid"],
        attempt,
        optional_str(document, "worker_id"),
        {"attempt": attempt, **error},
        retry_in=exponential_backoff(max(attempt or 1, 1)),
    )


def error_details(
    exc: BaseException, record: JobRecord, *, error_type: str, traceback: str | None = None
) -> dict[str, Any]:
    """JoobQ's error details for a failed run of `record`."""
    import os

    return {
        "error_class": type(exc).__qualname__,
        "message": str(exc),
        "error_type": error_type,
        "backtrace": traceback,
        "attempt": record.attempt,
        "worker_id": record.worker_id,
        "queue": record.queue,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "failed_at": datetime.now().astimezone().isoformat(),
    }
