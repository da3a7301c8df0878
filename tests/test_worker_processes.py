"""Worker processes under real signals: crash recovery by lease, heartbeats, graceful drain.

Each test runs `python -m tests.process_app` subprocesses against its own migrated database.
Jobs log 'start' and 'end' rows in a side table, `perform_log`, on connections of their own, so
what ran survives a killed worker. Waits poll a condition with a deadline; leftover processes
are killed by the `spawn` fixture.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from joobq_sql import NewJob, PostgresStore
from tests.fault_support import FaultWorker
from tests.helpers import wait_until
from tests.process_app import TEST_SETTINGS, ProcSleepJob

REPO_ROOT = Path(__file__).resolve().parent.parent
QUEUE = "proc"
LEASE = float(TEST_SETTINGS["lease"])
GRACE = float(TEST_SETTINGS["shutdown_grace"])

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads signal masks from /proc (Linux)"
)


class WorkerProcess(FaultWorker):
    """One `python -m tests.process_app` subprocess, its output in a log file."""

    def __init__(self, database_url: str, log_path: Path, env: dict[str, str]) -> None:
        super().__init__(
            database_url, log_path, {"PROC_QUEUE": QUEUE, **env}, module="tests.process_app"
        )

    def wait_ready(self, timeout: float = 15.0) -> WorkerProcess:
        """Wait until the worker catches SIGTERM: `app.run()` installs its handler before it
        starts the workers, so from then on a signal drains instead of killing the process."""
        wait_until(self._catches_sigterm, timeout=timeout, what=f"worker {self.pid} to be ready")
        return self

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {self.pid} did not exit within {timeout}s:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        self.close()


@pytest.fixture
def spawn(database_url: str, tmp_path: Path) -> Iterator:
    """spawn(**env) starts a worker process; every one still running at the end is killed."""
    started: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        worker = WorkerProcess(database_url, tmp_path / f"worker-{len(started)}.log", env)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


@pytest.fixture
def perform_log(pg: psycopg.Connection) -> psycopg.Connection:
    pg.execute(
        "CREATE TABLE perform_log "
        "(jid uuid, attempt int, event text, at timestamptz default clock_timestamp())"
    )
    return pg


@pytest.fixture
def store(database_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(database_url, pool_size=2)
    yield store
    store.close()


def enqueue(store: PostgresStore, *jobs: ProcSleepJob) -> list[UUID]:
    return store.enqueue_jobs([NewJob.from_job(job, queue=QUEUE) for job in jobs])


def events(pg: psycopg.Connection, jid: UUID | None = None) -> list[tuple]:
    """perform_log rows in order: (attempt, event) for one job, else (jid, attempt, event)."""
    if jid is not None:
        rows = pg.execute(
            "SELECT attempt, event FROM perform_log WHERE jid = %s ORDER BY at, event DESC",
            (jid,),
        )
    else:
        rows = pg.execute("SELECT jid, attempt, event FROM perform_log ORDER BY at, event DESC")
    return rows.fetchall()


def job_row(pg: psycopg.Connection, jid: UUID) -> tuple | None:
    """(status, attempt, worker_id) of a job, None once it is gone (completed jobs are deleted)."""
    return pg.execute(
        "SELECT status, attempt, worker_id FROM joobq.jobs WHERE jid = %s", (jid,)
    ).fetchone()


def counter(pg: psycopg.Connection, name: str) -> int:
    row = pg.execute(
        "SELECT coalesce(sum(value), 0) FROM joobq.queue_counters WHERE counter = %s", (name,)
    ).fetchone()
    return int(row[0])


def running_count(pg: psycopg.Connection) -> int:
    return pg.execute("SELECT count(*) FROM joobq.jobs WHERE status = 'running'").fetchone()[0]


def listeners(pg: psycopg.Connection) -> int:
    """Sessions of this database whose last statement was a LISTEN."""
    row = pg.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
    ).fetchone()
    return int(row[0])


def test_sigkilled_worker_job_runs_again_after_its_lease_expires(spawn, perform_log, store):
    pg = perform_log
    a = spawn()
    a.wait_ready()
    job = ProcSleepJob(n=1, seconds=30, retry_seconds=0)
    enqueue(store, job)
    wait_until(lambda: events(pg, job.jid) == [(1, "start")], what="attempt 1 to start")

    a.kill()
    assert a.proc.returncode == -signal.SIGKILL
    status, attempt, worker_id = job_row(pg, job.jid)
    assert (status, attempt) == ("running", 1), "nobody is alive to rescue it yet"
    assert f":{a.pid}:" in worker_id

    b = spawn()
    wait_until(
        lambda: job_row(pg, job.jid) is None and (2, "end") in events(pg, job.jid),
        timeout=15,
        what=f"the job to run again and complete; worker log:\n{b.log()}",
    )
    assert events(pg, job.jid) == [(1, "start"), (2, "start"), (2, "end")]
    assert counter(pg, "rescued") == 1
    assert counter(pg, "completed") == 1
    assert b.alive()


def test_job_longer_than_its_lease_is_never_rescued_from_a_live_worker(spawn, perform_log, store):
    pg = perform_log
    seconds = 3 * LEASE
    # Two live workers: either one's lease rescuer would take the job, and either one would
    # run it again, if its lease lapsed while it ran.
    workers = [spawn(), spawn()]
    for worker in workers:
        worker.wait_ready()
    job = ProcSleepJob(n=1, seconds=seconds, retry_seconds=0)
    enqueue(store, job)
    wait_until(lambda: events(pg, job.jid), what="the job to start")
    wait_until(
        lambda: job_row(pg, job.jid) is None,
        timeout=seconds + 10,
        what="the job to complete",
    )
    assert events(pg, job.jid) == [(1, "start"), (1, "end")]
    assert counter(pg, "rescued") == 0
    assert counter(pg, "completed") == 1
    assert all(worker.alive() for worker in workers)


@pytest.mark.parametrize(
    ("signum", "env", "claimed_at_least"),
    [
        (signal.SIGTERM, {}, 2),
        (signal.SIGINT, {}, 2),
        # 4 workers, 2 starts a minute: 2 jobs run, 2 more are claimed and wait for the throttle.
        (signal.SIGTERM, {"PROC_WORKERS": "4", "PROC_THROTTLE": "2/60"}, 4),
    ],
    ids=["SIGTERM", "SIGINT", "SIGTERM-throttled"],
)
def test_signal_drains_running_jobs_and_releases_the_claimed_batch(
    spawn, perform_log, store, signum, env, claimed_at_least
):
    pg = perform_log
    jobs = [ProcSleepJob(n=i, seconds=1.5) for i in range(10)]
    enqueue(store, *jobs)  # before the worker starts: its first claim takes a batch
    lease = 3.0  # a longer lease, so that "released well before a lease" tolerates a slow machine
    worker = spawn(
        **{"PROC_WORKERS": "2", "JOOBQ_WORKER_BATCH_SIZE": "10", "JOOBQ_LEASE": str(lease)} | env
    )
    worker.wait_ready()
    wait_until(
        lambda: len([e for e in events(pg) if e[2] == "start"]) == 2, what="two jobs to start"
    )
    # Claimed but not started: jobs buffered ahead of the workers (a runtime that prefetches a
    # batch claims all 10), or waiting for the queue's throttle.
    wait_until(
        lambda: running_count(pg) >= claimed_at_least,
        what=f"{claimed_at_least} jobs to be claimed",
    )

    sent = time.monotonic()
    worker.send(signum)
    # Released at once: visible as enqueued, with no run charged (a release keeps attempt 1
    # and adds 1 to redrive_attempt), before a lease could even expire. (A rescue would
    # record a lease_expired error.)
    wait_until(
        lambda: (
            pg.execute(
                "SELECT count(*) FROM joobq.jobs "
                "WHERE status = 'enqueued' AND attempt = redrive_attempt AND worker_id IS NULL"
            ).fetchone()[0]
            == 8
        ),
        timeout=0.8 * lease,
        interval=0.01,
        what="the eight unstarted jobs to be released",
    )
    assert worker.wait_exit(GRACE) == 0, worker.log()
    assert time.monotonic() - sent < GRACE

    started = {jid for jid, _, event in events(pg) if event == "start"}
    assert len(started) == 2
    for jid in started:
        assert events(pg, jid) == [(1, "start"), (1, "end")], "a running job finished"
        assert job_row(pg, jid) is None, "and was acknowledged before the exit"
    rest = [job.jid for job in jobs if job.jid not in started]
    rows = pg.execute(
        "SELECT status, attempt - redrive_attempt, worker_id, errors::text FROM joobq.jobs "
        "WHERE jid = ANY(%s) ORDER BY id",
        (rest,),
    ).fetchall()
    assert rows == [("enqueued", 0, None, "[]")] * 8, "released unchanged"
    assert counter(pg, "rescued") == 0
    assert counter(pg, "completed") == 2


def test_second_sigterm_skips_the_grace_period(spawn, perform_log, store):
    pg = perform_log
    a = spawn()
    a.wait_ready()
    job = ProcSleepJob(n=1, seconds=30, retry_seconds=0)
    enqueue(store, job)
    wait_until(lambda: events(pg, job.jid) == [(1, "start")], what="the job to start")

    a.send(signal.SIGTERM)
    # Signals of one kind that arrive together are delivered once: wait for the first to be
    # handled, then send the second within the grace period.
    wait_until(lambda: "SIGTERM: draining" in a.log(), what="the first SIGTERM to be handled")
    sent = time.monotonic()
    a.send(signal.SIGTERM)
    assert a.wait_exit(GRACE) == 0, a.log()
    assert time.monotonic() - sent < GRACE / 2, "exited promptly, not at the end of the grace"
    assert "second SIGTERM" in a.log()

    # The job was not finished: it is left to lease rescue, still running under a's id.
    assert events(pg, job.jid) == [(1, "start")]
    status, attempt, worker_id = job_row(pg, job.jid)
    assert (status, attempt) == ("running", 1)
    assert f":{a.pid}:" in worker_id

    spawn()
    wait_until(
        lambda: job_row(pg, job.jid) is None and (2, "end") in events(pg, job.jid),
        timeout=15,
        what="the job to be rescued and run again",
    )
    assert events(pg, job.jid) == [(1, "start"), (2, "start"), (2, "end")]
    assert counter(pg, "rescued") == 1


@pytest.mark.parametrize("notify", [True, False], ids=["notify", "poll-only"])
def test_worker_processes_jobs(spawn, perform_log, database_url, notify):
    pg = perform_log
    worker = spawn(JOOBQ_NOTIFY=str(notify).lower())
    worker.wait_ready()
    if notify:
        wait_until(lambda: listeners(pg) == 1, what="the worker to LISTEN")
    else:
        assert listeners(pg) == 0, "poll-only mode never LISTENs"
    jobs = [ProcSleepJob(n=i, seconds=0) for i in range(5)]
    store = PostgresStore(database_url, pool_size=1, notify=notify)
    try:
        enqueue(store, *jobs)
    finally:
        store.close()
    wait_until(
        lambda: pg.execute("SELECT count(*) FROM joobq.jobs").fetchone()[0] == 0,
        what="every job to complete",
    )
    assert sorted(jid for jid, _, event in events(pg) if event == "end") == sorted(
        job.jid for job in jobs
    )
    assert counter(pg, "completed") == 5
    assert listeners(pg) == (1 if notify else 0)
    assert worker.alive()
    worker.send(signal.SIGTERM)
    assert worker.wait_exit(GRACE) == 0, worker.log()
