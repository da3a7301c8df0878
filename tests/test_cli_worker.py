"""`joobq-sql worker` as real processes: a bad --app, and workers sharing one queue.

Jobs of tests/cli_app.py log (pid, jid, attempt) to `cli_perform_log` on their own
connections, so the test counts side effects: every job ran exactly once, whichever process
ran it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from joobq_sql import PostgresStore
from tests.cli_app import REPO_ROOT, assert_usage_error, cli_env, run_cli
from tests.helpers import wait_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("tests.no_such_module:app", "cannot import module 'tests.no_such_module'"),
        ("tests.cli_app:no_such_app", "has no attribute 'no_such_app'"),
        ("tests.cli_app", "is not of the form"),
        ("tests.cli_app:CliCountJob", "not a JoobQ application"),
    ],
    ids=["no-module", "no-attribute", "no-colon", "not-an-app"],
)
def test_a_bad_app_reference_is_bad_usage(database_url: str, reference: str, message: str):
    result = run_cli(database_url, "worker", "--app", reference)
    assert_usage_error(result, message)


def test_unknown_queues_are_bad_usage(database_url: str) -> None:
    result = run_cli(database_url, "worker", "--app", "tests.cli_app:app", "--queues", "cli,nope")
    assert result.returncode == 2
    assert "unknown queues ['nope']" in result.stderr


def test_a_worker_on_an_unmigrated_database_says_to_migrate(fresh_database_url: str) -> None:
    result = run_cli(fresh_database_url, "worker", "--app", "tests.cli_app:app")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("run: joobq-sql migrate"), result.stderr
    assert "Traceback" not in result.stderr


class Worker:
    """A `joobq-sql worker` subprocess with its output in a file."""

    def __init__(self, database_url: str, log: Path, *args: str) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "joobq_sql", "worker", "--app", "tests.cli_app:app", *args],
            cwd=REPO_ROOT,
            env=cli_env(database_url),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, signum: int, timeout: float = 20) -> int:
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker did not exit:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def perform_log(pg: psycopg.Connection) -> psycopg.Connection:
    pg.execute("CREATE TABLE cli_perform_log (pid int, jid uuid, attempt int)")
    return pg


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator:
    started: list[Worker] = []

    def start(*args: str) -> Worker:
        worker = Worker(database_url, tmp_path / f"worker-{len(started)}.log", *args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def test_worker_processes_share_a_queue_and_each_job_runs_once(
    database_url, perform_log, workers, tmp_path
) -> None:
    pg = perform_log
    single = workers()
    supervised = workers("--processes", "2", "--threads", "2", "--queues", "cli")
    # All three processes running before the jobs arrive: otherwise the first one up may run
    # them all while the others still start, and "shared" would be a race's outcome.
    store = PostgresStore(database_url)
    try:
        wait_until(
            lambda: len(store.live_workers()) >= 3,
            timeout=60,
            what=f"three live worker processes:\n{single.log()}\n{supervised.log()}",
        )
    finally:
        store.close()
    jobs = tmp_path / "jobs.jsonl"
    count = 120
    jobs.write_text("".join(f'{{"n": {n}, "seconds": 0.03}}\n' for n in range(count)))
    enqueued = run_cli(
        database_url, "enqueue", "CliCountJob", "--app", "tests.cli_app:app", "--file", str(jobs)
    )
    assert enqueued.returncode == 0, enqueued.stderr

    def all_done() -> bool:
        left = pg.execute("SELECT count(*) FROM joobq.jobs WHERE queue = 'cli'").fetchone()[0]
        return left == 0

    wait_until(all_done, timeout=60, what=f"every job to complete:\n{single.log()}")
    rows = pg.execute("SELECT pid, jid, attempt FROM cli_perform_log").fetchall()
    assert len(rows) == count, "each job performed exactly once"
    assert len({jid for _, jid, _ in rows}) == count
    assert {attempt for *_, attempt in rows} == {1}
    pids = {pid for pid, _, _ in rows}
    assert len(pids) >= 2, f"the work was shared between processes, got pids {pids}"

    assert supervised.stop(signal.SIGTERM) == 0, supervised.log()
    assert "started 2 worker processes" in supervised.log()
    assert single.stop(signal.SIGINT) == 0, single.log()
