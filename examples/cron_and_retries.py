"""A plain script: a recurring job, a cron job, a flaky job that succeeds on a retry and a job
that fails for good, run by a worker until each has shown what it does.

    python examples/cron_and_retries.py      # JOOBQ_DATABASE_URL, else the embedded PostgreSQL

In production, `app.run()` (or `joobq-sql worker --app examples.cron_and_retries:app`) blocks
until SIGTERM/SIGINT and then drains; any number of worker processes enqueue each tick once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

from joobq_sql import Job, JoobQ

#: What the jobs did, for the summary (a real job would write somewhere durable).
done: Counter[str] = Counter()
_lock = threading.Lock()


def record(event: str) -> None:
    with _lock:
        done[event] += 1


class Heartbeat(Job):
    """Enqueued every second by `app.every`."""

    queue = "ops"

    def perform(self) -> None:
        record("heartbeat")


class Rollup(Job):
    """Enqueued by a cron pattern; six fields, so the first one is seconds: every second."""

    queue = "ops"
    table: str

    def perform(self) -> None:
        record(f"rollup {self.table}")


class FetchPrices(Job):
    """Fails twice (the upstream is flaky), then succeeds: runs at most 1 + 3 times."""

    queue = "ops"
    retries = 3

    @classmethod
    def backoff(cls, attempt: int) -> float:
        return 0.2 * attempt  # the default is 2^(attempt-1) s: 1 s, 2 s, 4 s, ...

    def perform(self) -> None:
        record("fetch attempt")
        if self.attempt < 3:
            raise ConnectionError(f"the price feed timed out (attempt {self.attempt})")
        record("prices fetched")


class ImportBadFile(Job):
    """Fails every time: after 1 + retries runs it is dead, kept for inspection and re-drive."""

    queue = "ops"
    retries = 1
    discard_on = (PermissionError,)  # not worth retrying at all

    @classmethod
    def backoff(cls, attempt: int) -> float:
        return 0.1

    def perform(self) -> None:
        record("import attempt")
        raise ValueError("row 7: the date column is empty")


app = JoobQ(poll_interval=0.2, maintenance_interval=0.5, retry_jitter=0)
app.queue("ops", workers=4, jobs=[Heartbeat, Rollup, FetchPrices, ImportBadFile])
app.every(timedelta(seconds=1), Heartbeat)
app.cron("* * * * * *", Rollup, tz="UTC", table="sales")


def finished() -> bool:
    with _lock:
        return (
            done["heartbeat"] >= 2
            and done["rollup sales"] >= 2
            and done["prices fetched"] == 1
            and done["import attempt"] == 2
        )


def main() -> None:
    app.store.clear_queue("ops")
    FetchPrices.enqueue()
    bad = ImportBadFile.enqueue()
    worker = app.start()
    try:
        deadline = time.monotonic() + 30
        while not finished() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    record_of_bad = app.store.get_job(bad)
    print(f"heartbeats: {'>= 2' if done['heartbeat'] >= 2 else done['heartbeat']}")
    print(f"rollups: {'>= 2' if done['rollup sales'] >= 2 else done['rollup sales']}")
    print(f"prices fetched on attempt {done['fetch attempt']}")
    if record_of_bad is not None and record_of_bad.last_error is not None:
        print(
            f"import: {record_of_bad.status.value} after {record_of_bad.attempt} runs "
            f"({record_of_bad.dead_reason}; last error: {record_of_bad.last_error['message']})"
        )
    app.close()
    if not finished():
        raise SystemExit(f"not everything happened in time: {dict(done)}")


if __name__ == "__main__":
    main()
