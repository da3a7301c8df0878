"""A JoobQ application run in worker subprocesses by tests/test_worker_processes.py.

    JOOBQ_DATABASE_URL=postgresql+psycopg://... python -m tests.process_app

The database comes from JOOBQ_DATABASE_URL. Settings default to values tuned for tests (a 1 s
lease renewed every 0.3 s, maintenance every 0.2 s, a 0.2 s poll); any JOOBQ_<SETTING> variable
overrides them (e.g. JOOBQ_NOTIFY=false for poll-only). PROC_QUEUE names the queue (default
"proc"), PROC_WORKERS its worker count (default 2), and PROC_THROTTLE="limit/period" an optional
throttle (at most `limit` job starts per `period` seconds).

Nothing is built at import time: the tests import the job classes to enqueue them, and only
`main()` builds and runs the application. Job class names start with "Proc": job types are
registered by class name, and must not clash with other test modules'.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import psycopg
from sqlalchemy.engine import make_url

from joobq_sql import Job, JoobQ

#: Settings tuned for tests, each used unless its JOOBQ_<SETTING> variable is set.
TEST_SETTINGS: dict[str, float] = {
    "lease": 1,
    "heartbeat_interval": 0.3,
    "maintenance_interval": 0.2,
    "poll_interval": 0.2,
    "shutdown_grace": 10,
}
DEFAULT_QUEUE = "proc"
DEFAULT_WORKERS = 2
SLEEP_STEP = 0.05


def queue_name() -> str:
    return os.environ.get("PROC_QUEUE", DEFAULT_QUEUE)


def libpq_dsn(url: str | None = None) -> str:
    """The libpq form (for psycopg.connect) of `url`, default $JOOBQ_DATABASE_URL."""
    url = url or os.environ["JOOBQ_DATABASE_URL"]
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def log_event(jid: object, attempt: int, event: str) -> None:
    """Record a perform event in the test's `perform_log` table, on a connection of its own
    (committed at once: it survives the worker being killed)."""
    with psycopg.connect(libpq_dsn(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO perform_log (jid, attempt, event, at) "
            "VALUES (%s, %s, %s, clock_timestamp())",
            (jid, attempt, event),
        )


class ProcSleepJob(Job):
    """Logs 'start', sleeps, logs 'end'. `seconds` is the first attempt's sleep; later attempts
    (a rescued job run again) sleep `retry_seconds`, so a recovery test need not wait."""

    queue = DEFAULT_QUEUE
    n: int
    seconds: float
    retry_seconds: float = 0.0

    def perform(self) -> None:
        log_event(self.jid, self.attempt, "start")
        duration = self.seconds if self.attempt <= 1 else self.retry_seconds
        deadline = time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(SLEEP_STEP, left))
        log_event(self.jid, self.attempt, "end")


def build_app(database_url: str | None = None) -> JoobQ:
    """The application: one queue ($PROC_QUEUE, $PROC_WORKERS workers) running ProcSleepJob."""
    settings = {
        name: value
        for name, value in TEST_SETTINGS.items()
        if f"JOOBQ_{name.upper()}" not in os.environ
    }
    if database_url is not None:
        settings["database_url"] = database_url
    app = JoobQ(**settings)
    workers = int(os.environ.get("PROC_WORKERS", DEFAULT_WORKERS))
    throttle = os.environ.get("PROC_THROTTLE")
    limit, period = throttle.split("/") if throttle else (None, None)
    app.queue(
        queue_name(),
        workers=workers,
        jobs=[ProcSleepJob],
        limit=None if limit is None else int(limit),
        period=None if period is None else float(period),
    )
    return app


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s %(message)s",
    )
    if not os.environ.get("JOOBQ_DATABASE_URL"):
        sys.exit("tests.process_app needs JOOBQ_DATABASE_URL")
    app = build_app()
    try:
        code = app.run()
    finally:
        app.close()
    logging.getLogger("tests.process_app").info("exiting with code %d", code)
    sys.exit(code)


if __name__ == "__main__":
    main()
