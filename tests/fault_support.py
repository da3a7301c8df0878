"""Worker subprocesses and side-effect accounting for the fault tests.

A `FaultWorker` is one `python -m tests.fault_app` process with its output in a log file. It is
ready once `app.run()` has installed its SIGTERM handler (read from /proc/<pid>/status) and its
Worker has logged that it runs its queues. The `fault_log` table counts performs: one row per
perform, keyed by (jid, attempt).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from uuid import UUID

import psycopg

from joobq_sql import NewJob, PostgresStore
from tests.fault_app import LOG_APPLICATION_NAME, LOG_TABLE_DDL, FaultCountJob
from tests.helpers import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent


class FaultWorker:
    """One worker subprocess running tests.fault_app."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        env: Mapping[str, str],
        *,
        module: str = "tests.fault_app",
    ) -> None:
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("JOOBQ_", "FAULT_")) and name != "DATABASE_URL"
        }
        environment.update(JOOBQ_DATABASE_URL=database_url, **env)
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO_ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _catches_sigterm(self) -> bool:
        if not self.alive():
            raise AssertionError(f"worker {self.pid} exited early:\n{self.log()[-5000:]}")
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except FileNotFoundError:
            return False
        caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
        return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))

    def _started(self) -> bool:
        return self._catches_sigterm() and "running queues" in self.log()

    def wait_ready(self, timeout: float = 20.0) -> FaultWorker:
        """Wait until its SIGTERM handler is installed (so a signal drains it) and its Worker
        has started (it logs "worker ... running queues" at the end of Worker.start)."""
        wait_until(self._started, timeout=timeout, what=f"worker {self.pid} to be ready")
        return self

    def sigkill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, and the exit code once it has drained."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {self.pid} did not exit within {timeout}s:\n{self.log()[-5000:]}"
            ) from None

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)
        self._log.close()


class Workers:
    """Starts FaultWorkers for one test; `close()` kills whatever still runs."""

    def __init__(self, database_url: str, directory: Path, **env: str) -> None:
        self.database_url = database_url
        self.directory = directory
        self.env = env
        self.started: list[FaultWorker] = []

    def spawn(self, **env: str) -> FaultWorker:
        path = self.directory / f"worker-{len(self.started)}.log"
        worker = FaultWorker(self.database_url, path, {**self.env, **env})
        self.started.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name} ---\n{w.log()[-3000:]}" for w in self.started)

    def close(self) -> None:
        for worker in self.started:
            worker.close()


def create_log_table(conn: psycopg.Connection) -> None:
    conn.execute(LOG_TABLE_DDL)


def enqueue_counting(
    store: PostgresStore, count: int, *, queue: str, seconds: float = 0.0, **job: object
) -> list[UUID]:
    jobs = [FaultCountJob(n=i, seconds=seconds, **job) for i in range(count)]  # type: ignore[arg-type]
    rows = [NewJob.from_job(j, queue=queue, max_retries=FaultCountJob.retries) for j in jobs]
    return store.enqueue_jobs(rows, batch_size=5000)


def remaining(conn: psycopg.Connection, queue: str | None = None) -> int:
    """Jobs still in the jobs table (completed jobs are deleted), any status."""
    if queue is None:
        return conn.execute("SELECT count(*) FROM joobq.jobs").fetchone()[0]
    return conn.execute("SELECT count(*) FROM joobq.jobs WHERE queue = %s", (queue,)).fetchone()[0]


def performs(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM fault_log").fetchone()[0]


def counter(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(value), 0) FROM joobq.queue_counters WHERE counter = %s", (name,)
    ).fetchone()
    return int(row[0])


class Accounting:
    """What fault_log says about a set of jobs."""

    def __init__(self, conn: psycopg.Connection, jids: Iterable[UUID]) -> None:
        expected = set(jids)
        rows = conn.execute("SELECT jid, attempt, pid FROM fault_log").fetchall()
        self.rows = rows
        self.by_jid: dict[UUID, list[tuple[int, int]]] = {}
        for jid, attempt, pid in rows:
            self.by_jid.setdefault(jid, []).append((attempt, pid))
        self.missing = expected - set(self.by_jid)
        self.unknown = set(self.by_jid) - expected
        keys = [(jid, attempt) for jid, attempt, _ in rows]
        self.same_attempt_twice = len(keys) - len(set(keys))
        self.duplicated = {jid: runs for jid, runs in self.by_jid.items() if len(runs) > 1}

    @property
    def extra_performs(self) -> int:
        return sum(len(runs) - 1 for runs in self.duplicated.values())

    def summary(self) -> str:
        return (
            f"{len(self.rows)} performs of {len(self.by_jid)} jobs; missing {len(self.missing)}, "
            f"unknown {len(self.unknown)}, duplicated {len(self.duplicated)} "
            f"({self.extra_performs} extra), same (jid, attempt) twice {self.same_attempt_twice}"
        )


def backends(conn: psycopg.Connection, *, include_log: bool = False) -> list[int]:
    """Server pids of the other sessions on this database (the workers', and the log's only
    with `include_log`)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
        "AND (%s OR application_name <> %s)",
        (include_log, LOG_APPLICATION_NAME),
    ).fetchall()
    return [pid for (pid,) in rows]
