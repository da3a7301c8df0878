"""PostgresStore: the Store contract on one PostgreSQL jobs table."""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row
from sqlalchemy import Engine

from ... import _validation as check
from ...errors import ConfigurationError, DuplicateJobError
from ...status import JobStatus
from .. import presence
from ..base import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEAD_LETTER_TTL,
    DEFAULT_LEASE,
    RELEASE_JIDS_OR_KEEP,
    Store,
    checked_started,
    counter_shard,
)
from ..records import (
    MAX_ERROR_HISTORY,
    Completion,
    Failure,
    JobRecord,
    NewJob,
    QueueStats,
    WorkerInfo,
    to_json_object,
)
from ..unrunnable import (
    UNRUNNABLE_MAX_BACKOFF,
    UNRUNNABLE_MIN_BACKOFF,
    HandBack,
    checked_grace,
    checked_hand_backs,
    unrunnable_dead_reason,
)
from ._connections import Connections, engine_from_url, url_from_environment, use_safe_loaders
from .arrays import float_array, int_array, text_array, uuid_array
from .copy_text import copy_text
from .hot_table import TableHealth, health_statement, read_health, run_vacuum
from .notifier import Listener, channel_for, libpq_dsn, notify_queues
from .queries import Queries
from .queue_stats import STATS_EXACT_LIMIT, build_queue_stats
from .schema import COUNTER_SHARDS, DEFAULT_SCHEMA

if TYPE_CHECKING:
    from .async_store import AsyncStore


class PostgresStore(Store):
    """The Store on PostgreSQL.

    Build it from a URL (``postgresql+psycopg://...``; plain ``postgresql://`` works too) or an
    existing SQLAlchemy Engine on the psycopg driver. With neither, JOOBQ_DATABASE_URL, else
    DATABASE_URL. The database must be migrated (``joobq-sql migrate`` or
    ``joobq_sql.migrate.upgrade``) into `schema`.
    """

    def __init__(
        self,
        url_or_engine: str | Engine | None = None,
        *,
        schema: str = DEFAULT_SCHEMA,
        pool_size: int = 10,
        lease: timedelta | float = DEFAULT_LEASE,
        dead_letter_ttl: timedelta | float = DEFAULT_DEAD_LETTER_TTL,
        keep_completed: timedelta | float | None = None,
        notify: bool = True,
    ) -> None:
        super().__init__(
            lease=lease, dead_letter_ttl=dead_letter_ttl, keep_completed=keep_completed
        )
        self.schema: str = schema
        self._sql = Queries(schema)  # validates the schema name
        #: Send a NOTIFY per queue with each enqueue; False for poll-only set-ups (PgBouncer
        #: in transaction mode), where workers find new jobs by polling.
        self.notify = bool(notify)
        self.channel = channel_for(schema)
        check.positive_int(pool_size, what="pool_size")
        if url_or_engine is None:
            url_or_engine = url_from_environment()
            if url_or_engine is None:
                raise ConfigurationError(
                    "no database given: pass a URL or Engine to PostgresStore, "
                    "or set JOOBQ_DATABASE_URL"
                )
        if isinstance(url_or_engine, Engine):
            if url_or_engine.dialect.driver != "psycopg":
                raise ConfigurationError(
                    f"the Engine uses the {url_or_engine.dialect.driver!r} driver; "
                    "PostgresStore needs postgresql+psycopg"
                )
            self._owns_engine = False
            engine = url_or_engine
            use_safe_loaders(engine, shared=True)  # for the connections it opens from now on
        elif isinstance(url_or_engine, str):
            self._owns_engine = True
            engine = engine_from_url(url_or_engine, pool_size=pool_size)
        else:
            raise TypeError(
                f"PostgresStore needs a URL string or an SQLAlchemy Engine, got {url_or_engine!r}"
            )
        self.engine = engine
        self._db = Connections(engine)

    def close(self) -> None:
        if self._owns_engine:
            self._db.dispose()

    # -- helpers ---------------------------------------------------------------------------

    def _rows(
        self, name: str, params: dict[str, Any], connection: Any = None
    ) -> list[dict[str, Any]]:
        with self._db.cursor(connection) as cur:
            cur.execute(self._sql[name], params, prepare=_prepare(name))
            return cur.fetchall() if cur.description is not None else []

    def _records(self, name: str, params: dict[str, Any]) -> list[JobRecord]:
        return [_record(row) for row in self._rows(name, params)]

    def _rowcount(self, name: str, params: dict[str, Any]) -> int:
        with self._db.cursor() as cur:
            cur.execute(self._sql[name], params, prepare=_prepare(name))
            return cur.rowcount

    def _dead_ttl(self, ttl: float | None) -> float:
        if ttl is None:
            return self.dead_letter_ttl_seconds
        return check.seconds(ttl, what="dead_letter_ttl", allow_zero=False)

    def _lease(self, lease: float | None) -> float:
        return (
            self.lease_seconds
            if lease is None
            else check.seconds(lease, what="lease", allow_zero=False)
        )

    # -- primitives ------------------------------------------------------------------------

    def enqueue_jobs(
        self,
        jobs: Sequence[NewJob],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        connection: Any = None,
    ) -> list[UUID]:
        check.positive_int(batch_size, what="batch_size")
        jobs = list(jobs)
        for job in jobs:
            if not isinstance(job, NewJob):
                raise TypeError(f"enqueue_jobs takes NewJob values, got {type(job).__name__}")
        if not jobs:
            return []
        if len(jobs) == 1:
            # One job is one statement (enqueue_job.sql), so it needs no transaction around
            # it: on our own connection it runs in autocommit (no BEGIN, no COMMIT), and in
            # the caller's transaction it is the only statement the enqueue adds (no
            # savepoint: it fails no statement when its key or jid is taken).
            with self._db.cursor(connection, autocommit=True) as cur:
                return [self._insert_one(cur, jobs[0])]
        if connection is None and _one_insert(jobs, batch_size):
            # One statement that writes all of the batch or, failing, none of it: it needs no
            # BEGIN and COMMIT of its own either.
            with self._db.cursor(autocommit=True) as cur:
                return self._insert_chunk(cur, jobs)
        with self._db.cursor(connection) as cur:
            if connection is None:
                # Our own transaction: any error rolls all of it back.
                return self._insert_and_notify(cur, jobs, batch_size)
            # The caller's transaction: a savepoint makes the batch one unit inside it, so an
            # error in a later chunk (a refused unique job, a stored jid) leaves none of the
            # batch behind, and the caller's transaction usable.
            cur.execute("SAVEPOINT joobq_enqueue")
            try:
                jids = self._insert_and_notify(cur, jobs, batch_size)
            except BaseException:
                with contextlib.suppress(psycopg.Error):  # a broken connection: nothing to keep
                    cur.execute("ROLLBACK TO SAVEPOINT joobq_enqueue")
                raise
            cur.execute("RELEASE SAVEPOINT joobq_enqueue")
            return jids

    def _insert_one(self, cur: Any, job: NewJob) -> UUID:
        """Insert one job with its wake-up (enqueue_job.sql); the jid standing for it: its
        own, or for a skipped unique job the jid of the job holding its key.

        When nothing was written, its key is held or its jid is stored; the holder or the jid
        is looked up. A holder that finished before the lookup freed the key: the insert is
        tried again, in rounds bounded as _insert_chunk's are. Nothing is ever half-written:
        the statement wrote the job, or nothing.
        """
        params = {
            "jid": job.jid,
            "queue": job.queue,
            "job_type": job.job_type,
            "args": job.args_json,
            "priority": job.priority,
            "max_retries": job.max_retries,
            "delay_s": job.delay,
            "run_at": job.run_at,
            "expires_in_s": job.expires_in,
            "expires_at": job.expires_at,
            "unique_key": job.unique_key,
            "notify": self.notify,
            "channel": self.channel,
        }
        for _ in range(UNIQUE_INSERT_ROUNDS):
            # Prepared at once (the text is the same for every job): later enqueues on this
            # connection send only Bind/Execute, and the server skips parsing and planning.
            # psycopg still prepares nothing on a connection whose prepare_threshold is None
            # (a PgBouncer in transaction mode older than 1.21, docs/scaling.md).
            cur.execute(self._sql["enqueue_job"], params, prepare=True)
            if cur.fetchone() is not None:
                return job.jid
            if job.unique_key is not None:
                holder = self._unique_holders(cur, [job]).get(_unique(job))
                if holder is not None:
                    if holder != job.jid and job.on_duplicate == "raise":
                        raise _duplicate_unique_job(job, holder)
                    return holder
            cur.execute(self._sql["get_job"], {"jid": job.jid})
            if cur.fetchone() is not None:
                raise DuplicateJobError(
                    f"a job with the same jid is already stored (jid {job.jid}); "
                    "nothing was written"
                )
            # Whatever held its key or jid finished meanwhile: try again.
        raise _unsettled_unique_key(job)

    def _insert_and_notify(self, cur: Any, jobs: list[NewJob], batch_size: int) -> list[UUID]:
        if len(jobs) >= COPY_THRESHOLD and all(j.unique_key is None for j in jobs):
            runnable = self._copy_jobs(cur, jobs)
            if self.notify:
                # COPY cannot notify: one more statement, delivered at COMMIT (the caller's,
                # with `connection`), dropped on rollback.
                notify_queues(cur, self._sql, channel=self.channel, queues=runnable)
            return [job.jid for job in jobs]
        result: list[UUID] = []
        for start in range(0, len(jobs), batch_size):
            result.extend(self._insert_chunk(cur, jobs[start : start + batch_size]))
        return result

    def _insert_chunk(self, cur: Any, chunk: list[NewJob]) -> list[UUID]:
        """Insert one chunk with its wake-ups (enqueue_jobs.sql); the jid standing for each
        job: its own, or for a skipped unique job the jid of the job holding its key.

        A skipped job's holder can finish between the INSERT ... ON CONFLICT DO NOTHING and
        the lookup (each statement sees the rows committed when it starts); its key is free
        then, and the job's insert is tried again. Each further round needs yet another
        holder to come and go in that instant, so the rounds are bounded.
        """
        stands_for: dict[UUID, UUID] = {}
        pending = chunk
        for _ in range(UNIQUE_INSERT_ROUNDS):
            params = {**_enqueue_params(pending), "notify": self.notify, "channel": self.channel}
            cur.execute(self._sql["enqueue_jobs"], params)
            inserted = {row["jid"] for row in cur.fetchall()}
            skipped = [job for job in pending if job.jid not in inserted]
            holders = self._unique_holders(cur, skipped) if skipped else {}
            vanished = []
            for job in pending:
                holder = job.jid if job.jid in inserted else holders.get(_unique(job))
                if holder is None:
                    vanished.append(job)  # its holder finished meanwhile: try again
                elif holder != job.jid and job.on_duplicate == "raise":
                    raise _duplicate_unique_job(job, holder)
                else:
                    stands_for[job.jid] = holder
            if not vanished:
                return [stands_for[job.jid] for job in chunk]
            pending = vanished
        raise _unsettled_unique_key(pending[0])

    def _copy_jobs(self, cur: Any, jobs: list[NewJob]) -> set[str]:
        """COPY the jobs in; the same rows enqueue_jobs.sql would insert (a duplicate jid
        fails the whole COPY, so nothing partial is written). Returns the queues that got a
        job runnable now. Run times and expiries count from the transaction's now()."""
        cur.execute(self._sql["now"])
        now: datetime = cur.fetchone()["now"]
        runnable: set[str] = set()
        with cur.copy(self._sql["copy_jobs"]) as copy:
            for text in copy_text(jobs, now, runnable):
                copy.write(text)
        return runnable

    def _unique_holders(self, cur: Any, jobs: list[NewJob]) -> dict[tuple[str, str | None], UUID]:
        cur.execute(
            self._sql["find_unique_jobs"],
            {"job_type": [j.job_type for j in jobs], "unique_key": [j.unique_key for j in jobs]},
        )
        return {(row["job_type"], row["unique_key"]): row["jid"] for row in cur.fetchall()}

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
        worker_id = check.worker_id(worker_id)
        params = {
            "queue": queue,
            "worker_id": worker_id,
            "limit": check.positive_int(limit, what="limit"),
            "lease_s": self._lease(lease),
            "started": checked_started(started),
        }
        # The hot path: rows as tuples in CLAIM_COLUMNS order (claim_jobs.sql), no dicts.
        # One statement, so in autocommit: no BEGIN and no COMMIT round trip, and its row locks
        # end with it, not after the rows are decoded. (A claim whose reply is lost may have
        # committed either way, as when a COMMIT's reply is lost: the runtime releases what
        # it may have claimed, see QueueRunner._claim.)
        with self._db.cursor(row_factory=tuple_row, autocommit=True) as cur:
            statement = claim_statement(cur.connection.info.server_version)
            cur.execute(self._sql[statement], params)
            rows = cur.fetchall()
            if not rows:
                return []
            decode = _ClaimDecoder(cur.connection)
            return [_claimed_record(decode(row), queue, worker_id, started) for row in rows]

    def renew_leases(
        self,
        worker_id: str,
        jids: Sequence[UUID],
        *,
        lease: float | None = None,
        unstarted: Sequence[UUID] = (),
    ) -> set[UUID]:
        jids = _jids(jids)
        unstarted = _jids(unstarted)
        if not jids:
            return set()
        params = {
            "worker_id": check.worker_id(worker_id),
            "jids": jids,
            "lease_s": self._lease(lease),
            "unstarted": unstarted,
        }
        return {row["jid"] for row in self._rows("renew_leases", params)}

    def complete_jobs(self, completions: Sequence[Completion]) -> list[UUID]:
        completions = list(completions)
        if not completions:
            return []
        statement = (
            "complete_jobs_delete" if self.keep_completed_seconds is None else "complete_jobs_keep"
        )
        params = {
            "jid": uuid_array([c.jid for c in completions]),
            "attempt": int_array([c.attempt for c in completions]),
            "worker_id": text_array([c.worker_id for c in completions]),
            "shard": _shard(completions[0].worker_id),
        }
        # One statement (the finish and its counters): in autocommit, no BEGIN or COMMIT
        # round trip.
        with self._db.cursor(row_factory=tuple_row, autocommit=True) as cur:
            cur.execute(self._sql[statement], params, prepare=_prepare(statement))
            return [row[0] for row in cur.fetchall()]

    def fail_jobs(
        self, failures: Sequence[Failure], *, dead_letter_ttl: float | None = None
    ) -> dict[UUID, JobStatus]:
        failures = list(failures)
        if not failures:
            return {}
        ttl = self._dead_ttl(dead_letter_ttl)
        params = {
            "jid": [f.jid for f in failures],
            "attempt": [f.attempt for f in failures],
            "worker_id": [f.worker_id for f in failures],
            "error": [json.dumps(f.error) for f in failures],
            "retry_in_s": [f.retry_in for f in failures],
            "dead_reason": [f.dead_reason for f in failures],
            "dead_ttl_s": ttl,
            "max_errors": MAX_ERROR_HISTORY,
            "shard": _shard(failures[0].worker_id),
        }
        return {row["jid"]: JobStatus(row["status"]) for row in self._rows("fail_jobs", params)}

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
        params = {
            "worker_id": check.worker_id(worker_id),
            "jids": None if jids is None else _jids(jids),
            "keep": None if keep is None else _jids(keep),
            "queue": None if queue is None else check.queue_name(queue, existing=True),
            "limit": None if limit is None else check.non_negative_int(limit, what="limit"),
            "dead_ttl_s": self.dead_letter_ttl_seconds,
            "shard": _shard(worker_id),
            # Released jobs are runnable again: wake the queue's listeners, as an enqueue does.
            "notify": self.notify,
            "channel": self.channel,
        }
        return [row["jid"] for row in self._rows("release_jobs", params)]

    def hand_back_jobs(
        self,
        hand_backs: Sequence[HandBack],
        *,
        grace: float | None = None,
        dead_letter_ttl: float | None = None,
    ) -> dict[UUID, JobStatus]:
        hand_backs = checked_hand_backs(hand_backs)
        grace_s = checked_grace(grace, self.unrunnable_grace_seconds)
        if not hand_backs:
            return {}
        params = {
            "jid": [h.jid for h in hand_backs],
            "attempt": [h.attempt for h in hand_backs],
            "worker_id": [h.worker_id for h in hand_backs],
            "error": [json.dumps(h.error) for h in hand_backs],
            "dead_reason": [unrunnable_dead_reason(h.reason, grace_s) for h in hand_backs],
            "grace_s": grace_s,
            "min_backoff_s": UNRUNNABLE_MIN_BACKOFF,
            "max_backoff_s": UNRUNNABLE_MAX_BACKOFF,
            "dead_ttl_s": self._dead_ttl(dead_letter_ttl),
            "max_errors": MAX_ERROR_HISTORY,
            "shard": _shard(hand_backs[0].worker_id),
        }
        rows = self._rows("hand_back_jobs", params)
        return {row["jid"]: JobStatus(row["status"]) for row in rows}

    def rescue_expired_leases(self, queue: str | None = None, *, limit: int = 1000) -> list[UUID]:
        params = {
            "queue": None if queue is None else check.queue_name(queue, existing=True),
            "limit": check.positive_int(limit, what="limit"),
            "dead_ttl_s": self.dead_letter_ttl_seconds,
            "max_errors": MAX_ERROR_HISTORY,
            "shard": _shard("maintenance"),
        }
        return [row["jid"] for row in self._rows("rescue_expired_leases", params)]

    def expire_waiting_jobs(self, *, limit: int = 1000) -> list[UUID]:
        params = {
            "limit": check.positive_int(limit, what="limit"),
            "dead_ttl_s": self.dead_letter_ttl_seconds,
            "max_errors": MAX_ERROR_HISTORY,
            "shard": _shard("maintenance"),
        }
        return [row["jid"] for row in self._rows("expire_waiting_jobs", params)]

    def purge_dead(self, *, limit: int = 1000) -> int:
        return self._rowcount("purge_dead", {"limit": check.positive_int(limit, what="limit")})

    def prune_completed(self, *, limit: int = 1000) -> int:
        check.positive_int(limit, what="limit")
        if self.keep_completed_seconds is None:
            return 0
        return self._rowcount(
            "prune_completed", {"limit": limit, "keep_s": self.keep_completed_seconds}
        )

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
        params = _upsert_params(document, JobStatus(status))
        params.update(
            delay_s=0.0 if delay is None else check.seconds(delay, what="delay"),
            run_at=None if run_at is None else check.aware_datetime(run_at, what="run_at"),
            dead_until=dead_until,
            dead_reason=dead_reason if status is JobStatus.DEAD else None,
        )
        self._rows("upsert_job", params)

    def due_jobs(self, at: datetime, limit: int, *, take: bool) -> list[JobRecord]:
        params = {
            "at": check.aware_datetime(at, what="at"),
            "limit": check.positive_int(limit, what="limit"),
        }
        return self._records("take_due_jobs" if take else "peek_due_jobs", params)

    def get_job(self, jid: UUID) -> JobRecord | None:
        rows = self._records("get_job", {"jid": _jids([jid])[0]})
        return rows[0] if rows else None

    def list_queue(self, queue: str, *, offset: int, limit: int) -> list[JobRecord]:
        params = {
            "queue": check.queue_name(queue, existing=True),
            "offset": check.non_negative_int(offset, what="offset"),
            "limit": check.positive_int(limit, what="limit"),
        }
        return self._records("list_queue", params)

    def count_jobs(self, queue: str, status: JobStatus, *, due_only: bool = False) -> int:
        params = {
            "queue": check.queue_name(queue, existing=True),
            "status": JobStatus(status).value,
            "due_only": bool(due_only),
        }
        return int(self._rows("count_jobs", params)[0]["count"])

    def delete_jobs(self, jids: Sequence[UUID]) -> int:
        jids = _jids(jids)
        return self._rowcount("delete_jobs", {"jids": jids}) if jids else 0

    def clear_waiting(self, queue: str) -> int:
        return self._rowcount("clear_waiting", {"queue": check.queue_name(queue, existing=True)})

    def queue_stats(self) -> dict[str, QueueStats]:
        """Per queue, at a cost bounded by the queues, not the jobs: counts are exact up to
        STATS_EXACT_LIMIT rows per part of a queue, estimated beyond (queue_stats.py)."""
        with self._db.cursor() as cur:
            cur.execute(self._sql["queue_counts"], {"cap": STATS_EXACT_LIMIT})
            rows = cur.fetchall()
            cur.execute(self._sql["queue_totals"])
            totals: dict[str, dict[str, int]] = {}
            for row in cur.fetchall():
                totals.setdefault(row["queue"], {})[row["counter"]] = int(row["value"])
            cur.execute(self._sql["paused_queues"])
            paused = {row["queue"] for row in cur.fetchall()}

            def live_rows() -> int:
                cur.execute(self._sql["jobs_live_rows"])
                return int(cur.fetchall()[0]["live_rows"])

            return build_queue_stats(rows, totals=totals, paused=paused, live_rows=live_rows)

    @property
    def sql_engine(self) -> Engine:
        return self.engine

    def listener(
        self, *, on_wake: Callable[[str], None], on_reconnect: Callable[[], None]
    ) -> Listener | None:
        """LISTEN on this store's channel, on a connection of its own (not from the pool);
        None when the store was built with notify=False."""
        if not self.notify:
            return None
        return Listener(
            libpq_dsn(self.engine),
            channel=self.channel,
            on_wake=on_wake,
            on_reconnect=on_reconnect,
        )

    def async_twin(self, *, pool_size: int) -> AsyncStore:
        from .async_store import AsyncPostgresStore

        return AsyncPostgresStore.from_store(self, pool_size=pool_size)

    def hot_table_health(self) -> list[TableHealth]:
        """The jobs table's live and dead row versions, when it was last vacuumed, and whether
        this role may VACUUM it (see hot_table.py)."""
        with self._db.cursor() as cur:
            statement = health_statement(cur.connection.info.server_version)
            return read_health(cur, self._sql[statement])

    def vacuum_jobs_table(self) -> bool:
        """VACUUM the jobs table (only it: never the database). True when it ran, False when
        another VACUUM held the table; VacuumRefusedError when this role may not."""
        return run_vacuum(self.engine, self._sql["vacuum_jobs"])

    def search_jobs(
        self,
        *,
        queue: str | None = None,
        status: JobStatus | None = None,
        job_type: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[JobRecord]:
        params = {
            "queue": None if queue is None else check.queue_name(queue, existing=True),
            "status": None if status is None else JobStatus(status).value,
            "job_type": None if job_type is None else check.job_type(job_type, existing=True),
            "offset": check.non_negative_int(offset, what="offset"),
            "limit": check.positive_int(limit, what="limit"),
        }
        return self._records("search_jobs", params)

    def retry_jobs(self, jids: Sequence[UUID]) -> list[UUID]:
        jids = _jids(jids)
        return [r["jid"] for r in self._rows("retry_jobs", {"jids": jids})] if jids else []

    def retry_dead(self, *, queue: str | None = None, limit: int = 1000) -> list[UUID]:
        params = {
            "queue": None if queue is None else check.queue_name(queue, existing=True),
            "limit": check.positive_int(limit, what="limit"),
        }
        return [row["jid"] for row in self._rows("retry_dead", params)]

    def cancel_jobs(
        self, jids: Sequence[UUID], *, dead_letter_ttl: float | None = None
    ) -> dict[UUID, str]:
        jids = _jids(jids)
        if not jids:
            return {}
        params = {"jids": jids, "dead_ttl_s": self._dead_ttl(dead_letter_ttl)}
        return {row["jid"]: row["outcome"] for row in self._rows("cancel_jobs", params)}

    def cancel_requested(self, worker_id: str, jids: Sequence[UUID]) -> set[UUID]:
        jids = _jids(jids)
        if not jids:
            return set()
        params = {"worker_id": check.worker_id(worker_id), "jids": jids}
        return {row["jid"] for row in self._rows("cancel_requested", params)}

    def delete_dead(self, *, queue: str | None = None, limit: int = 1000) -> int:
        params = {
            "queue": None if queue is None else check.queue_name(queue, existing=True),
            "limit": check.positive_int(limit, what="limit"),
        }
        return self._rowcount("delete_dead", params)

    def pause_queue(self, queue: str) -> bool:
        return bool(self._rows("pause_queue", {"queue": check.queue_name(queue)}))

    def resume_queue(self, queue: str) -> bool:
        return bool(self._rows("resume_queue", {"queue": check.queue_name(queue, existing=True)}))

    def paused_queues(self) -> set[str]:
        return {row["queue"] for row in self._rows("paused_queues", {})}

    def enqueue_tick(self, schedule: str, tick: datetime, job: NewJob) -> bool:
        if not isinstance(job, NewJob):
            raise TypeError(f"enqueue_tick takes a NewJob, got {type(job).__name__}")
        params = {
            "schedule": check.queue_name(schedule, what="schedule name"),
            "tick": check.aware_datetime(tick, what="tick"),
            "jid": job.jid,
            "queue": job.queue,
            "job_type": job.job_type,
            "args": job.args_json,
            "priority": job.priority,
            "max_retries": job.max_retries,
            "expires_in_s": job.expires_in,
            "unique_key": job.unique_key,
        }
        with self._db.cursor() as cur:
            cur.execute(self._sql["enqueue_tick"], params)
            enqueued = bool(cur.fetchall())
            if enqueued and self.notify:
                notify_queues(cur, self._sql, channel=self.channel, queues={job.queue})
        return enqueued

    def last_ticks(self) -> dict[str, datetime]:
        return {row["schedule"]: row["tick"] for row in self._rows("last_ticks", {})}

    def prune_ticks(self, *, older_than: float) -> int:
        seconds = check.seconds(older_than, what="older_than")
        return self._rowcount("prune_ticks", {"older_than_s": seconds})

    def worker_seen(
        self,
        worker_id: str,
        *,
        host: str,
        pid: int,
        queues: Sequence[str],
        heartbeat_interval: float = presence.DEFAULT_HEARTBEAT_INTERVAL,
    ) -> None:
        params = {
            "worker_id": check.worker_id(worker_id),
            "host": str(host),
            "pid": int(pid),
            "queues": [check.queue_name(q) for q in queues],
            "heartbeat_interval_s": check.seconds(
                heartbeat_interval, what="heartbeat_interval", allow_zero=False
            ),
        }
        self._rows("worker_seen", params)

    def worker_gone(self, worker_id: str) -> None:
        self._rows("worker_gone", {"worker_id": check.worker_id(worker_id)})

    def live_workers(self, *, within: float | None = None) -> list[WorkerInfo]:
        params = {
            "within_s": None if within is None else check.seconds(within, what="within"),
            "beats": presence.ALIVE_HEARTBEATS,
            "floor_s": presence.ALIVE_FLOOR_SECONDS,
        }
        rows = self._rows("live_workers", params)
        return [WorkerInfo(**{**row, "queues": tuple(row["queues"])}) for row in rows]

    def prune_workers(self, *, limit: int = 1000) -> int:
        params = {
            "limit": check.positive_int(limit, what="limit"),
            "beats": presence.PRUNE_HEARTBEATS,
            "floor_s": presence.PRUNE_FLOOR_SECONDS,
        }
        return self._rowcount("prune_workers", params)

    def completed_per_minute(self, *, since: float = 3600.0) -> dict[str, dict[datetime, int]]:
        rows = self._rows("completed_per_minute", {"since_s": check.seconds(since, what="since")})
        out: dict[str, dict[datetime, int]] = {}
        for row in rows:
            out.setdefault(row["queue"], {})[row["minute"]] = int(row["completed"])
        return out

    def prune_history(self, *, older_than: float = 86400.0) -> int:
        seconds = check.seconds(older_than, what="older_than")
        return int(self._rows("prune_history", {"older_than_s": seconds})[0]["pruned"])

    def now(self) -> datetime:
        with self._db.cursor() as cur:
            cur.execute(self._sql["now"])
            row = cur.fetchone()
        assert row is not None
        now: datetime = row["now"]
        return now


#: From this many jobs in one enqueue (and none unique), COPY is used instead of INSERT.
COPY_THRESHOLD = 200

#: How many times a unique job's insert is tried while the jobs holding its key keep finishing
#: between the insert and the lookup of the holder (see PostgresStore._insert_chunk).
UNIQUE_INSERT_ROUNDS = 20


#: The first server version whose btree skip scan makes claim_jobs.sql's single scan stop at
#: the jobs not yet due (run_at <= now() becomes a bound within each priority).
SKIP_SCAN_SERVER_VERSION = 180000


def claim_statement(server_version: int) -> str:
    """The claim statement for a server (`server_version` as libpq reports it, e.g. 150004).

    Both claim the same jobs in the same order. Before 18, claim_jobs.sql's scan would walk every
    job not yet due, so claim_jobs_by_priority.sql probes each priority and range-scans its due
    jobs. That one is planned afresh on every claim like the other but has one more scan of jobs
    to plan (about 0.3 ms more server time per claim), a cost 18 need not pay.
    """
    if server_version >= SKIP_SCAN_SERVER_VERSION:
        return "claim_jobs"
    return "claim_jobs_by_priority"


#: Statements that look jobs up by a list of jids, planned afresh on every run. Their best plan
#: depends on how many jids the array holds and how large the table is; a prepared statement
#: gets PostgreSQL's generic plan after five runs, which sees neither (one generic plan tried for
#: the completion read the whole table: 150 ms per 1,000 jobs against 1M rows, against 6 ms).
_PLANNED_PER_RUN = frozenset(
    {
        "complete_jobs_delete",
        "complete_jobs_keep",
        "fail_jobs",
        "renew_leases",
        "cancel_requested",
        "release_jobs",
        "hand_back_jobs",
        "retry_jobs",
        "delete_jobs",
        "cancel_jobs",
    }
)


def _prepare(statement: str) -> bool | None:
    """psycopg's `prepare`: False for _PLANNED_PER_RUN, else its default (after five runs)."""
    return False if statement in _PLANNED_PER_RUN else None


def _shard(worker_id: str | None) -> int:
    """The queue_counters shard a worker's finishes add to. A runtime worker id is
    host:pid:suffix (worker.make_worker_id): its shard is the host's hash plus the pid, so
    processes on one host (pids in a row, as a supervisor or --processes starts them) write
    different rows and never wait on each other's row locks; a hash of the whole id sent two
    processes to one row 1 run in 16. Any other id (the seed API's, "maintenance"): its hash."""
    parts = (worker_id or "").rsplit(":", 2)
    if len(parts) == 3 and parts[1].isascii() and parts[1].isdecimal():
        host, pid = parts[0], int(parts[1])
        return (zlib.crc32(host.encode()) + pid) % COUNTER_SHARDS
    return counter_shard(worker_id, COUNTER_SHARDS)


def _jids(jids: Sequence[UUID]) -> list[UUID]:
    out = []
    for jid in jids:
        if not isinstance(jid, UUID):
            raise TypeError(f"jid must be a UUID, got {type(jid).__name__}: {jid!r}")
        out.append(jid)
    return out


def _unique(job: NewJob) -> tuple[str, str | None]:
    return (job.job_type, job.unique_key)


def _one_insert(jobs: list[NewJob], batch_size: int) -> bool:
    """Whether enqueue_jobs writes `jobs` with a single INSERT: one chunk, below the COPY
    threshold, and no unique job (whose skip would take a lookup and maybe another insert)."""
    return (
        len(jobs) <= batch_size
        and len(jobs) < COPY_THRESHOLD
        and all(job.unique_key is None for job in jobs)
    )


def _duplicate_unique_job(job: NewJob, holder: UUID) -> DuplicateJobError:
    return DuplicateJobError(
        f"a {job.job_type} job with unique_key {job.unique_key!r} is already "
        f"waiting or running (jid {holder}); nothing was enqueued"
    )


def _unsettled_unique_key(job: NewJob) -> DuplicateJobError:
    return DuplicateJobError(
        f"the unique_key {job.unique_key!r} of {job.job_type} jobs kept changing hands: "
        f"{UNIQUE_INSERT_ROUNDS} times in a row, the job holding it finished before it "
        "could be looked up and another took its place; nothing was enqueued"
    )


def _enqueue_params(jobs: Sequence[NewJob]) -> dict[str, str]:
    """enqueue_jobs.sql's arrays, as array literals (arrays.py: psycopg's dumping of a list,
    element by element, cost a chunk more than its INSERT). Timestamps are written as
    psycopg's text dumper writes them, str(datetime)."""
    return {
        "jid": uuid_array([j.jid for j in jobs]),
        "queue": text_array([j.queue for j in jobs]),
        "job_type": text_array([j.job_type for j in jobs]),
        "args": text_array([j.args_json for j in jobs]),
        "priority": int_array([j.priority for j in jobs]),
        "max_retries": int_array([j.max_retries for j in jobs]),
        "delay_s": float_array([j.delay for j in jobs]),
        "run_at": text_array([None if j.run_at is None else str(j.run_at) for j in jobs]),
        "expires_in_s": float_array([j.expires_in for j in jobs]),
        "expires_at": text_array(
            [None if j.expires_at is None else str(j.expires_at) for j in jobs]
        ),
        "unique_key": text_array([j.unique_key for j in jobs]),
    }


def _upsert_params(document: dict[str, Any], status: JobStatus) -> dict[str, Any]:
    """Validated insert values from a seed job document (used when its jid is new)."""
    args = document.get("args", {})
    return {
        "jid": document["jid"],
        "queue": check.queue_name(document.get("queue", "default"), what="job['queue']"),
        "job_type": check.job_type(document.get("job_type")),
        "args": to_json_object(args, what="job['args']"),
        "status": status.value,
        "priority": check.priority(document.get("priority", 0)),
        "attempt": check.attempt_count(document.get("attempt", 0), what="job['attempt']"),
        "max_retries": check.attempt_count(
            document.get("max_retries", 3), what="job['max_retries']"
        ),
    }


def _record(row: dict[str, Any]) -> JobRecord:
    row["seq"] = row.pop("id")
    row["status"] = JobStatus(row["status"])
    row.setdefault("errors", [])  # statements that do not read the history back
    return JobRecord(**row)


#: The columns claim_jobs.sql returns, in order: JobRecord's fields less its error history
#: and less the queue, status and worker id, which the claim sets to what the store was given
#: (`id` is the record's `seq`).
CLAIM_COLUMNS = (
    "jid", "job_type", "args", "priority", "run_at", "attempt", "max_retries", "expires_at",
    "lease_expires_at", "last_error", "dead_reason", "dead_expires_at", "created_at",
    "updated_at", "finished_at", "id", "unique_key", "cancel_requested_at", "redrive_attempt",
)  # fmt: skip


# Each field's slot setter. A claim builds a thousand records at a time, and a frozen
# dataclass's __init__ sets each field through object.__setattr__, which takes a claim more
# time than decoding the rows; the slot descriptors store the same values directly.
def _slot_setter(field_name: str) -> Any:
    return getattr(JobRecord, field_name).__set__


#: (column index, slot setter) for every claimed column.
_CLAIM_SETTERS = tuple(
    (index, _slot_setter("seq" if name == "id" else name))
    for index, name in enumerate(CLAIM_COLUMNS)
)
_set_queue = _slot_setter("queue")
_set_status = _slot_setter("status")
_set_worker_id = _slot_setter("worker_id")
_set_errors = _slot_setter("errors")
_set_started = _slot_setter("started")
_set_unrunnable_since = _slot_setter("unrunnable_since")
_new = object.__new__
_RUNNING = JobStatus.RUNNING


_TIMESTAMPTZ = psycopg.adapters.types["timestamptz"].oid
_JSONB = psycopg.adapters.types["jsonb"].oid
#: The columns claim_jobs.sql sends as text (see there): the args, then four timestamps.
_ARGS_COLUMN = CLAIM_COLUMNS.index("args")
_TEXT_TIMES = tuple(
    CLAIM_COLUMNS.index(name) for name in ("run_at", "lease_expires_at", "created_at", "updated_at")
)


class _ClaimDecoder:
    """Decodes the text columns of one claim's rows with the connection's own loaders (so the
    same values as when psycopg decodes them: safe JSON, edge timestamps), each distinct
    timestamp once (datetimes are immutable, so rows share them) and an empty args as a new
    empty dict without the JSON decoder. A claim of 1,000 no-op jobs spent a third of its
    decoding on these five columns."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        adapters = connection.adapters
        time_loader = adapters.get_loader(_TIMESTAMPTZ, psycopg.pq.Format.TEXT)
        json_loader = adapters.get_loader(_JSONB, psycopg.pq.Format.TEXT)
        assert time_loader is not None and json_loader is not None  # psycopg registers both
        self._load_time = time_loader(_TIMESTAMPTZ, connection).load
        self._load_json = json_loader(_JSONB, connection).load
        self._times: dict[str | None, Any] = {None: None}

    def __call__(self, row: tuple[Any, ...]) -> list[Any]:
        values = list(row)
        times = self._times
        for index in _TEXT_TIMES:
            text = values[index]
            moment = times.get(text)
            if moment is None and text is not None:
                moment = times[text] = self._load_time(text.encode())
            values[index] = moment
        args = values[_ARGS_COLUMN]
        values[_ARGS_COLUMN] = {} if args == "{}" else self._load_json(args.encode())
        return values


def _claimed_record(
    row: Sequence[Any], queue: str, worker_id: str, started: bool | None = None
) -> JobRecord:
    """The JobRecord of a claim_jobs.sql row (CLAIM_COLUMNS) claimed from `queue` by
    `worker_id` (now running), with an empty error history (a claim does not read it back)
    and the `started` value the claim wrote."""
    record: JobRecord = _new(JobRecord)
    # By index, not by zip over a row sliced around the status: the claim's fetcher builds
    # a thousand of these per claim, on the drain's critical path (2.1 -> 1.3 us a record).
    for index, set_field in _CLAIM_SETTERS:
        set_field(record, row[index])
    _set_queue(record, queue)
    _set_status(record, _RUNNING)
    _set_worker_id(record, worker_id)
    _set_errors(record, [])
    _set_started(record, started)
    _set_unrunnable_since(record, None)  # not returned by the claim
    return record
