"""The jobs of the runtime model test (tests/test_runtime_model.py), and their run log.

Every perform writes one `model_runs` row when it starts, and stamps its end in a `finally`:
(run id, jid, attempt, worker id, kind, pid, start, end, outcome), on a connection of its own
(autocommit, one per thread), in the database's clock. Because a row is written before the job
body and its end before perform returns, a run's end is in the log before its acknowledgement
is even queued, so before any retry of it can be claimed: two runs that overlap in the log
overlapped in fact.

The runtime's timeout raises JobTimeout inside a job's thread at any bytecode; the log writes
survive it (they are retried, and the exception re-raised once the row is written), so a run is
never logged twice or left without its end by the timeout that ended it.

The worker id comes from `model_middleware` (the runtime's JobContext), or from `acting_as`
for the test's own seed-API client. Imported by the worker subprocesses too
(tests/runtime_model_app.py): nothing here needs the test process.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, ClassVar

import psycopg

from joobq_sql import Job

QUEUE = "model"
SEED_QUEUE = "seed"
LOG_APPLICATION_NAME = "model-log"

#: A value taken from user data: a NUL and a lone surrogate, neither storable in text or jsonb.
UNSTORABLE = "cell\x00\ud800"

RUNS_DDL = """
CREATE TABLE model_runs (
    run_id uuid PRIMARY KEY,
    jid uuid NOT NULL,
    attempt int NOT NULL,
    worker_id text NOT NULL,
    kind text NOT NULL,
    pid int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at timestamptz,
    outcome text
);
CREATE INDEX model_runs_jid ON model_runs (jid);
"""

_state = threading.local()
_config: dict[str, str] = {}


def configure_log(dsn: str) -> None:
    """Where the run log is written (a libpq DSN of the test's database)."""
    _config["dsn"] = dsn


def _log_dsn() -> str:
    return _config.get("dsn") or os.environ["MODEL_LOG_DSN"]


def _connection() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_state, "conn", None)
    if conn is None or conn.closed or conn.broken:
        conn = psycopg.connect(
            _log_dsn(), autocommit=True, application_name=LOG_APPLICATION_NAME, connect_timeout=5
        )
        _state.conn = conn
    return conn


def _drop_connection() -> None:
    conn: psycopg.Connection[Any] | None = getattr(_state, "conn", None)
    _state.conn = None
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def _durably(statement: str, params: tuple[Any, ...]) -> None:
    """Run an idempotent log write until it succeeds. An exception that is not the log's own
    (the runtime's JobTimeout, raised asynchronously in this thread) is held and re-raised
    once the write is done, so it still ends the job as the runtime meant."""
    held: BaseException | None = None
    for _ in range(100):
        try:
            _connection().execute(statement, params)
            break
        except BaseException as exc:
            try:
                if not isinstance(exc, psycopg.Error) and held is None:
                    held = exc
                _drop_connection()
                time.sleep(0.02)
            except BaseException as late:  # the one asynchronous exception, landing here
                if held is None:
                    held = late
    else:
        raise RuntimeError("the model's run log could not be written")
    if held is not None:
        raise held


def current_worker() -> str:
    return getattr(_state, "worker_id", None) or "unknown"


def model_middleware(job: Job, context: Any, call_next: Callable[[], Any]) -> Any:
    """Tells the job which worker runs it (JoobQ's JobContext), for the run log."""
    previous = getattr(_state, "worker_id", None)
    _state.worker_id = context.worker_id
    try:
        return call_next()
    finally:
        _state.worker_id = previous


@contextlib.contextmanager
def acting_as(worker_id: str) -> Iterator[None]:
    """Run jobs in this block as `worker_id` (the test's seed-API client)."""
    previous = getattr(_state, "worker_id", None)
    _state.worker_id = worker_id
    try:
        yield
    finally:
        _state.worker_id = previous


@contextlib.contextmanager
def logged_run(job: Job, kind: str) -> Iterator[None]:
    """One model_runs row for this perform: started now, ended when the block leaves."""
    run_id = uuid.uuid4()
    _durably(
        "INSERT INTO model_runs (run_id, jid, attempt, worker_id, kind, pid) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING",
        (run_id, job.jid, job.attempt, current_worker(), kind, os.getpid()),
    )
    outcome = "ok"
    try:
        yield
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        _durably(
            "UPDATE model_runs SET ended_at = clock_timestamp(), outcome = %s "
            "WHERE run_id = %s AND ended_at IS NULL",
            (outcome, run_id),
        )


def _work(job: Job, seconds: float, *, step: float = 0.02) -> None:
    """Work for `seconds`, stopping early (JobCancelled) once a cancel is handed to the job."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        job.check_cancelled()
        time.sleep(min(step, left))
    job.check_cancelled()


class ModelWork(Job):
    """Works for `seconds` on attempts up to `slow_until`, fails on attempts up to
    `fail_until` (with a message PostgreSQL cannot store when `bad_message`), else succeeds."""

    queue = QUEUE
    retries = 8
    expires: ClassVar[timedelta | None] = None
    kind = "work"
    n: int
    seconds: float = 0.0
    slow_until: int = 1_000_000
    fail_until: int = 0
    bad_message: bool = False

    @classmethod
    def backoff(cls, attempt: int) -> float:
        return 0.1

    def perform(self) -> None:
        with logged_run(self, self.kind):
            _work(self, self.seconds if self.attempt <= self.slow_until else 0.0)
            if self.attempt <= self.fail_until:
                cell = UNSTORABLE if self.bad_message else "cell"
                raise ValueError(f"job {self.n}: unknown customer {cell} (attempt {self.attempt})")


class ModelDoomed(ModelWork):
    """Fails every run: it ends dead, its retries exhausted."""

    retries = 1
    kind = "doomed"


class ModelExpiring(ModelWork):
    """Expires 1.5 s after its enqueue if not started by then; its first run outlives that
    and fails, so its retry is due after its expiry."""

    expires = timedelta(seconds=1.5)
    kind = "expiring"


class ModelTimeout(Job):
    """Overruns its 0.4 s timeout on attempts up to `overrun_until` and swallows whatever it
    can (`except Exception`), as careless user code does: in steps of `step` seconds (a
    thread in a long C call sees the runtime's JobTimeout only when the call returns)."""

    queue = QUEUE
    retries = 4
    expires = None
    timeout = timedelta(seconds=0.4)
    kind = "timeout"
    n: int
    seconds: float = 1.2
    step: float = 0.05
    overrun_until: int = 1

    @classmethod
    def backoff(cls, attempt: int) -> float:
        return 0.1

    def perform(self) -> None:
        with logged_run(self, self.kind):
            if self.attempt > self.overrun_until:
                return
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                try:
                    time.sleep(self.step)
                except Exception:  # the careless user code under test
                    continue


class ModelTick(Job):
    """The job of the model's recurring schedule."""

    queue = QUEUE
    retries = 8
    expires = None
    kind = "tick"

    @classmethod
    def backoff(cls, attempt: int) -> float:
        return 0.1

    def perform(self) -> None:
        with logged_run(self, self.kind):
            pass


class ModelUnique(Job):
    """A unique job (one per key waiting or running); duplicates are skipped."""

    queue = QUEUE
    retries = 8
    expires = None
    kind = "unique"
    on_duplicate = "skip"
    key: int
    seconds: float = 0.02

    @classmethod
    def backoff(cls, attempt: int) -> float:
        return 0.1

    def unique_key(self) -> str | None:
        return f"model-{self.key}"

    def perform(self) -> None:
        with logged_run(self, self.kind):
            _work(self, self.seconds)


class ModelSeed(Job):
    """A job of the seed queue, claimed both by the runtime and by the test's seed-API client
    (claim_job, release_job_claims_batch, mark_job_completed)."""

    queue = SEED_QUEUE
    retries = 8
    expires = None
    kind = "seed"
    n: int
    seconds: float = 0.1

    @classmethod
    def backoff(cls, attempt: int) -> float:
        return 0.1

    def perform(self) -> None:
        with logged_run(self, self.kind):
            _work(self, self.seconds)


def late_job_class(job_type: str) -> type[ModelWork]:
    """A job class of type `job_type`, defined (and so registered) only when called: until
    then no worker knows the type, as when an old worker meets a newly deployed job."""
    namespace = {"job_type": job_type, "kind": "late", "__module__": __name__}
    return type("ModelLate", (ModelWork,), namespace)


#: The classes every model worker runs, per queue (the late class is added when defined).
def queue_classes(late: type[Job] | None = None) -> dict[str, list[type[Job]]]:
    model: list[type[Job]] = [ModelWork, ModelDoomed, ModelExpiring, ModelTimeout]
    model += [ModelTick, ModelUnique]
    if late is not None:
        model.append(late)
    return {QUEUE: model, SEED_QUEUE: [ModelSeed]}
