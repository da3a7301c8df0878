"""The PostgreSQL schema: the single source of truth that migrations/ reproduces.

One hot table, `jobs`, holds every live job with a `status` column. Completed jobs leave it at
once (or after their retention), dead jobs when their `dead_expires_at` passes, so it stays small.
`queue_counters` holds the running totals behind stats, sharded so that no single row is updated
by every completion.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    desc,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

# Re-exported: the schema's name rules live with the other input checks (settings use them).
from ..._validation import DEFAULT_SCHEMA as DEFAULT_SCHEMA
from ..._validation import validate_schema_name as validate_schema_name
from ...status import RUNNABLE_STATUSES, JobStatus

VERSION_TABLE = "joobq_alembic_version"

#: Storage parameters for the high-churn jobs table. Every claim and finish rewrites or deletes a
#: row, so vacuum early (2% dead rows instead of PostgreSQL's 20%) and without cost-based naps,
#: and leave room on each page for the new row versions.
JOBS_STORAGE_PARAMETERS: dict[str, str] = {
    "fillfactor": "80",
    "autovacuum_vacuum_scale_factor": "0.02",
    "autovacuum_vacuum_threshold": "500",
    "autovacuum_vacuum_insert_scale_factor": "0.02",
    "autovacuum_analyze_scale_factor": "0.05",
    "autovacuum_vacuum_cost_delay": "0",
}

#: Counters are sharded, so that no row is hot: a completing worker adds to one of
#: COUNTER_SHARDS rows per queue, chosen by store.postgres.store._shard (one per process on a host).
COUNTER_SHARDS = 16


def _status_list(statuses: tuple[JobStatus, ...]) -> str:
    return ", ".join(f"'{s.value}'" for s in statuses)


RUNNABLE_SQL = f"status IN ({_status_list(RUNNABLE_STATUSES)})"
#: The states in which a unique job blocks another enqueue of its key: waiting or running.
UNIQUE_WHILE_SQL = f"status IN ({_status_list((*RUNNABLE_STATUSES, JobStatus.RUNNING))})"
UNIQUE_KEY_PREDICATE = f"unique_key IS NOT NULL AND {UNIQUE_WHILE_SQL}"
#: The jobs the expiry sweep may expire: waiting, with an expiry, and never started (no run of
#: them spent retry budget: attempt - redrive_attempt, the budget used, is 0), nor rescued as
#: unstarted (the worker's unstarted mark can lag a start by one renewal: it may have run).
EXPIRY_PREDICATE = (
    f"{RUNNABLE_SQL} AND expires_at IS NOT NULL AND attempt <= redrive_attempt"
    " AND (last_error ->> 'error_type') IS DISTINCT FROM 'lease_expired_unstarted'"
)
ALL_STATUSES_SQL = _status_list(tuple(JobStatus))

#: The jobs table's time columns, each within the instants Python's datetime can hold.
TIME_COLUMNS = (
    "run_at", "expires_at", "lease_expires_at", "dead_expires_at", "created_at", "updated_at",
    "finished_at", "cancel_requested_at", "unrunnable_since",
)  # fmt: skip
#: A NULL time passes (a CHECK fails only on false); infinity and years outside 1..9999 do not.
TIMES_IN_RANGE_SQL = " AND ".join(
    f"{column} BETWEEN '0001-01-01 00:00:00+00' AND '9999-12-31 23:59:59.999999+00'"
    for column in TIME_COLUMNS
)


def build_metadata(schema: str = DEFAULT_SCHEMA) -> MetaData:
    """Return the MetaData of joobq's tables, placed in `schema`."""
    validate_schema_name(schema)
    metadata = MetaData(schema=schema)
    jobs = Table(
        "jobs",
        metadata,
        Column("jid", UUID(as_uuid=True), nullable=False),
        # Insertion order: the FIFO tie-break between jobs with the same priority and run_at.
        Column("id", BigInteger, Identity(always=False), nullable=False),
        Column("queue", Text, nullable=False),
        Column("job_type", Text, nullable=False),
        Column("args", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("status", Text, nullable=False),
        Column("priority", SmallInteger, nullable=False, server_default=text("0")),
        Column("run_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Runs started so far; a claim adds one, so attempt N is fenced against attempt N-1.
        Column("attempt", Integer, nullable=False, server_default=text("0")),
        Column("max_retries", Integer, nullable=False, server_default=text("3")),
        # The attempt count when a dead job was last re-driven: retries are counted from here,
        # so a re-driven job gets a fresh budget while attempts keep rising (and fencing).
        Column("redrive_attempt", Integer, nullable=False, server_default=text("0")),
        Column("expires_at", DateTime(timezone=True), nullable=True),
        Column("worker_id", Text, nullable=True),
        Column("lease_expires_at", DateTime(timezone=True), nullable=True),
        Column("last_error", JSONB, nullable=True),
        # The most recent errors, oldest first, at most MAX_ERROR_HISTORY entries.
        Column("errors", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        Column("dead_reason", Text, nullable=True),
        Column("dead_expires_at", DateTime(timezone=True), nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("finished_at", DateTime(timezone=True), nullable=True),
        # Unique jobs: while a job with this (job_type, unique_key) waits or runs, another
        # enqueue of the same key is refused or skipped (jobs_unique_key_idx).
        Column("unique_key", Text, nullable=True),
        # Cooperative cancel of a running job: set by cancel, seen by the worker's heartbeat.
        Column("cancel_requested_at", DateTime(timezone=True), nullable=True),
        # Whether the current attempt's run has started, as its worker last reported with its
        # lease renewal: NULL unknown (counted as started), false claimed but not yet started,
        # true started. A rescued attempt known not to have started spends no retry budget.
        Column("started", Boolean, nullable=True),
        # When a worker first handed the job back because it could not run it (an unknown
        # job type or args that do not fit, as in a rolling deploy); NULL once it runs.
        Column("unrunnable_since", DateTime(timezone=True), nullable=True),
        PrimaryKeyConstraint("jid", name="jobs_pkey"),
        CheckConstraint(f"status IN ({ALL_STATUSES_SQL})", name="jobs_status_check"),
        CheckConstraint("attempt >= 0", name="jobs_attempt_check"),
        CheckConstraint("max_retries >= 0", name="jobs_max_retries_check"),
        CheckConstraint("jsonb_typeof(args) = 'object'", name="jobs_args_object_check"),
        CheckConstraint(
            "(status = 'running') = (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)",
            name="jobs_running_lease_check",
        ),
        CheckConstraint(
            "status <> 'dead' OR dead_expires_at IS NOT NULL", name="jobs_dead_expiry_check"
        ),
        # Rows altered by hand must not wedge a queue: an attempt near int4's end would
        # overflow the claim's attempt + 1, and an infinite time cannot be read into Python.
        CheckConstraint("attempt < 1000000000", name="jobs_attempt_bound_check"),
        CheckConstraint(
            "isfinite(run_at) AND (expires_at IS NULL OR isfinite(expires_at))",
            name="jobs_times_finite_check",
        ),
        # Every time lies in the years 1..9999 (UTC) that Python's datetime holds: one a
        # reader could not decode (say an expires_at in year 20000, or an infinite created_at)
        # would fail every claim that returns its row, so its whole queue.
        CheckConstraint(TIMES_IN_RANGE_SQL, name="jobs_times_in_range_check"),
    )
    Index(
        "jobs_claim_idx",
        jobs.c.queue,
        desc(jobs.c.priority),
        jobs.c.run_at,
        jobs.c.id,
        postgresql_where=text(RUNNABLE_SQL),
    )
    # The expiry sweep's index (expire_waiting_jobs.sql): it reads only the expired rows.
    Index("jobs_expiry_idx", jobs.c.expires_at, postgresql_where=text(EXPIRY_PREDICATE))
    Index(
        "jobs_lease_idx",
        jobs.c.lease_expires_at,
        postgresql_where=text("status = 'running'"),
    )
    Index(
        "jobs_dead_purge_idx",
        jobs.c.dead_expires_at,
        postgresql_where=text("status = 'dead'"),
    )
    Index(
        "jobs_completed_prune_idx",
        jobs.c.finished_at,
        postgresql_where=text("status = 'completed'"),
    )
    Index(
        "jobs_unique_key_idx",
        jobs.c.job_type,
        jobs.c.unique_key,
        unique=True,
        postgresql_where=text(UNIQUE_KEY_PREDICATE),
    )
    Table(
        "queue_pauses",
        metadata,
        Column("queue", Text, nullable=False),
        Column("paused_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("queue", name="queue_pauses_pkey"),
    )
    # One row per (schedule, tick) ever enqueued: the primary key is what makes a recurring or
    # cron tick enqueue exactly one job however many processes run the scheduler.
    ticks = Table(
        "schedule_ticks",
        metadata,
        Column("schedule", Text, nullable=False),
        Column("tick", DateTime(timezone=True), nullable=False),
        Column("jid", UUID(as_uuid=True), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("schedule", "tick", name="schedule_ticks_pkey"),
    )
    Index("schedule_ticks_tick_idx", ticks.c.tick)
    Table(
        "workers",
        metadata,
        Column("worker_id", Text, nullable=False),
        Column("host", Text, nullable=False),
        Column("pid", Integer, nullable=False),
        Column("queues", ARRAY(Text), nullable=False),
        Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("last_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Seconds between the worker's heartbeats: it counts as alive while heard from within
        # a few of them, and its row is pruned after more. The default is for rows written by
        # a joobq-sql older than 0005 (three of 20 s: the minute those versions used).
        Column("heartbeat_interval_s", Float(53), nullable=False, server_default=text("20")),
        PrimaryKeyConstraint("worker_id", name="workers_pkey"),
        CheckConstraint("heartbeat_interval_s > 0", name="workers_heartbeat_interval_check"),
    )
    # Completed jobs per queue per minute, written by the completion statements: exact
    # throughput over the last hour without scanning anything big.
    throughput = Table(
        "queue_throughput",
        metadata,
        Column("queue", Text, nullable=False),
        Column("minute", DateTime(timezone=True), nullable=False),
        Column("shard", SmallInteger, nullable=False),
        Column("completed", BigInteger, nullable=False, server_default=text("0")),
        PrimaryKeyConstraint("queue", "minute", "shard", name="queue_throughput_pkey"),
    )
    Index("queue_throughput_minute_idx", throughput.c.minute)
    Table(
        "queue_counters",
        metadata,
        Column("queue", Text, nullable=False),
        Column("counter", Text, nullable=False),
        Column("shard", SmallInteger, nullable=False),
        Column("value", BigInteger, nullable=False, server_default=text("0")),
        PrimaryKeyConstraint("queue", "counter", "shard", name="queue_counters_pkey"),
    )
    return metadata


metadata = build_metadata()
