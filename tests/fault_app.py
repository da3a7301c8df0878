"""The JoobQ application the fault tests (tests/test_faults.py) run in worker subprocesses.

    JOOBQ_DATABASE_URL=postgresql+psycopg://... python -m tests.fault_app

Every perform of FaultCountJob writes one row to the test's `fault_log` table: (jid, attempt,
pid, the worker's clock, the database's clock). It writes it on a connection of its own (one per
worker thread, autocommit), so a row survives the worker being killed, and the tests can count
side effects per (jid, attempt) across processes. `FAULT_LOG_DSN` points that connection
elsewhere than the store's database URL (a test whose role has a connection limit logs as the
superuser, so that the log does not use the budget under test).

Settings default to values tuned for tests (a 1 s lease renewed every 0.3 s, maintenance every
0.2 s, a 0.2 s poll); any JOOBQ_<SETTING> variable overrides them. FAULT_QUEUE names the queue
(default "fault"), FAULT_WORKERS its worker threads (default 4).

Nothing is built at import time: the tests import the job classes to enqueue them. Job class
names start with "Fault": job types are registered by class name.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from joobq_sql import Job, JoobQ

TEST_SETTINGS: dict[str, float] = {
    "lease": 1,
    "heartbeat_interval": 0.3,
    "maintenance_interval": 0.2,
    "poll_interval": 0.2,
    "shutdown_grace": 10,
    "retry_jitter": 0,
}
DEFAULT_QUEUE = "fault"
DEFAULT_WORKERS = 4
LOG_APPLICATION_NAME = "joobq-fault-log"

#: The side-effect table; created by the tests in the database the log DSN points at.
LOG_TABLE_DDL = (
    "CREATE TABLE fault_log (jid uuid NOT NULL, attempt int NOT NULL, pid int NOT NULL, "
    "client_at timestamptz NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())"
)


def libpq_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def log_dsn() -> str:
    return os.environ.get("FAULT_LOG_DSN") or libpq_dsn(os.environ["JOOBQ_DATABASE_URL"])


_local = threading.local()


def _log_connection() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed or conn.broken:
        conn = psycopg.connect(
            log_dsn(), autocommit=True, application_name=LOG_APPLICATION_NAME, connect_timeout=5
        )
        _local.conn = conn
    return conn


def record_perform(jid: object, attempt: int) -> None:
    """One fault_log row for this perform. A lost connection fails the perform (the job is
    retried); the thread reconnects on its next job."""
    conn = _log_connection()
    try:
        conn.execute(
            "INSERT INTO fault_log (jid, attempt, pid, client_at) VALUES (%s, %s, %s, %s)",
            (jid, attempt, os.getpid(), datetime.now(UTC)),
        )
    except psycopg.OperationalError:
        conn.close()
        raise


class FaultCountJob(Job):
    """Works for `seconds` (the first attempt only, unless `every_attempt`), then records
    its perform. Retried quickly and often: a fault may fail a perform (its log connection
    was killed), and such a failure must not make a job dead."""

    queue = DEFAULT_QUEUE
    retries = 50
    n: int
    seconds: float = 0.0
    every_attempt: bool = True

    @classmethod
    def backoff(cls, attempt: int) -> float:
        return 0.2

    def perform(self) -> None:
        if self.seconds and (self.every_attempt or self.attempt <= 1):
            deadline = time.monotonic() + self.seconds
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(0.05, left))
        record_perform(self.jid, self.attempt)


def build_app() -> JoobQ:
    settings: dict[str, Any] = {
        name: value
        for name, value in TEST_SETTINGS.items()
        if f"JOOBQ_{name.upper()}" not in os.environ
    }
    app = JoobQ(**settings)
    app.queue(
        os.environ.get("FAULT_QUEUE", DEFAULT_QUEUE),
        workers=int(os.environ.get("FAULT_WORKERS", DEFAULT_WORKERS)),
        jobs=[FaultCountJob],
    )
    return app


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("FAULT_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s %(message)s",
    )
    if not os.environ.get("JOOBQ_DATABASE_URL"):
        sys.exit("tests.fault_app needs JOOBQ_DATABASE_URL")
    app = build_app()
    try:
        code = app.run()
    finally:
        app.close()
    logging.getLogger("tests.fault_app").info("exiting with code %d", code)
    sys.exit(code)


if __name__ == "__main__":
    main()
