"""Drain-and-exit (issue 15, item 7): `app.run(until_empty=True)` and
`joobq-sql worker --until-empty`.

"Empty" is: no job of the worker's queues is runnable now (a claim sent while the worker held
nothing came back empty), none is claimed or running in this worker, and every acknowledgement
is written. Jobs due later (delayed jobs, retries waiting out their backoff) do not keep it
running. It then shuts down as on SIGTERM and exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from joobq_sql import Job, JobStatus, PostgresStore
from joobq_sql.store.records import NewJob
from tests.cli_app import REPO_ROOT, assert_usage_error, cli_env, run_cli_in_process
from tests.runtime_support import Recorder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

log = Recorder()

#: Generous: a run that has not returned by then is stopped by SIGTERM and the test fails.
GUARD_SECONDS = 60.0


@pytest.fixture(autouse=True)
def _fresh_log() -> None:
    log.events.clear()


class UeNoop(Job):
    n: int = 0

    def perform(self) -> None:
        log.add(("noop", self.n))


class UeFailsOnce(Job):
    """Fails its first run; its retry is due a minute later."""

    retries = 2

    @classmethod
    def backoff(cls, attempt: int) -> float | None:
        return 60.0

    def perform(self) -> None:
        log.add(("fails", self.attempt))
        if self.attempt == 1:
            raise RuntimeError("the first run fails")


class UeAsync(Job):
    n: int = 0

    async def perform(self) -> None:
        log.add(("async", self.n))


@pytest.fixture
def guard() -> Iterator[threading.Event]:
    """SIGTERM to this process if run() has not returned within GUARD_SECONDS (it then drains
    and returns); the event tells the test it fired."""
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Timer(GUARD_SECONDS, fire)
    timer.start()
    yield fired
    timer.cancel()


def _statuses(pg: psycopg.Connection, queue: str = "default") -> list[tuple[str, int]]:
    return pg.execute(
        "SELECT status, attempt FROM joobq.jobs WHERE queue = %s ORDER BY status", (queue,)
    ).fetchall()


def test_run_until_empty_drains_the_queue_exits_0_and_leaves_jobs_due_later(
    make_app, pg, guard
) -> None:
    app = make_app(worker_batch_size=7)  # several claims
    app.queue("default", workers=3, jobs=[UeNoop, UeFailsOnce])
    for n in range(30):
        UeNoop.enqueue(n=n)
    UeNoop.delay(3600, n=999)  # delayed: not runnable now
    UeFailsOnce.enqueue()  # its retry is due a minute after its first run

    assert app.run(until_empty=True) == 0
    assert not guard.is_set(), "run() returned by itself"
    assert sorted(n for kind, n in log.snapshot() if kind == "noop") == list(range(30))
    assert ("fails", 1) in log.snapshot()
    # Every acknowledgement is written (completed rows are deleted); the two jobs due later
    # wait, unclaimed: the delayed one never ran, the retry ran once.
    assert _statuses(pg) == [(JobStatus.RETRYING.value, 1), (JobStatus.SCHEDULED.value, 0)]


def test_run_until_empty_with_nothing_to_do_exits_0(make_app, pg, guard) -> None:
    app = make_app()
    app.queue("default", jobs=[UeNoop])
    assert app.run(until_empty=True) == 0
    assert not guard.is_set(), "run() returned by itself"
    assert log.snapshot() == [] and _statuses(pg) == []


def test_run_until_empty_drains_an_async_queue_too(make_app, pg, guard) -> None:
    app = make_app(worker_batch_size=4)
    app.queue("default", workers=3, jobs=[UeAsync], mode="async")
    for n in range(10):
        UeAsync.enqueue(n=n)
    UeAsync.delay(3600, n=999)
    assert app.run(until_empty=True) == 0
    assert not guard.is_set(), "run() returned by itself"
    assert sorted(n for _, n in log.snapshot()) == list(range(10))
    assert _statuses(pg) == [(JobStatus.SCHEDULED.value, 0)]


# -- the CLI, as a subprocess ----------------------------------------------------------------


@pytest.fixture
def perform_log(pg: psycopg.Connection) -> psycopg.Connection:
    pg.execute("CREATE TABLE cli_perform_log (pid int, jid uuid, attempt int)")
    return pg


def test_worker_until_empty_drains_the_queue_and_exits_0(database_url, perform_log) -> None:
    pg = perform_log
    store = PostgresStore(database_url)
    try:
        rows = [
            NewJob(jid=uuid.uuid4(), queue="cli", job_type="CliCountJob", args={"n": n})
            for n in range(12)
        ]
        rows.append(
            NewJob(
                jid=uuid.uuid4(), queue="cli", job_type="CliCountJob", args={"n": 99}, delay=3600
            )
        )
        store.enqueue_jobs(rows)
    finally:
        store.close()
    argv = ["worker", "--app", "tests.cli_app:app", "--until-empty", "--log-level", "warning"]
    proc = subprocess.run(
        [sys.executable, "-m", "joobq_sql", *argv],
        cwd=REPO_ROOT,
        env=cli_env(database_url),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=GUARD_SECONDS,
    )
    assert proc.returncode == 0, proc.stderr
    performed = pg.execute("SELECT count(DISTINCT jid), count(*) FROM cli_perform_log").fetchone()
    assert performed == (12, 12), "each runnable job ran once"
    assert _statuses(pg, "cli") == [(JobStatus.SCHEDULED.value, 0)], "the delayed job waits"


def test_worker_until_empty_refuses_several_processes(database_url) -> None:
    """A supervisor restarts children that exit, so N drain-and-exit processes are N commands;
    refused before anything starts (run in this process: the same command line)."""
    result = run_cli_in_process(
        database_url,
        "worker",
        "--app",
        "tests.cli_app:app",
        "--until-empty",
        "--processes",
        "2",
    )
    assert_usage_error(result, "--until-empty", "--processes 2")
