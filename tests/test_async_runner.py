"""The async worker mode (``app.queue(..., mode="async")``): many ``async def perform`` jobs at
once on one event loop, with the threaded mode's leases, retries, timeouts, cancel, pause and
graceful shutdown. Against a real PostgreSQL; every wait polls a condition with a deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from joobq_sql import ConfigurationError, Job, JobStatus, JoobQ
from joobq_sql.runtime.async_runner import AsyncQueueRunner
from tests.helpers import wait_until
from tests.runtime_support import Recorder, start

log = Recorder()
QUEUE = "fetch"


@pytest.fixture(autouse=True)
def _fresh_log() -> None:
    log.events.clear()


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Inside a job: poll `condition` on the event loop, with a deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


class ArGather(Job):
    """Finishes only once `expected` of its kind have started: proof that they run at once."""

    queue = QUEUE
    expected: int

    async def perform(self) -> None:
        log.add(("start", threading.get_ident()))
        await until(lambda: len(log) >= self.expected)


class ArFlaky(Job):
    queue = QUEUE
    retries = 2

    @classmethod
    def backoff(cls, attempt: int) -> float:
        return 0.05

    async def perform(self) -> None:
        log.add(("run", self.attempt))
        if self.attempt == 1:
            raise ConnectionError("the upstream is busy")


class ArSlow(Job):
    queue = QUEUE
    retries = 0
    seconds: float = 30.0

    async def perform(self) -> None:
        log.add(("start", self.attempt))
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            log.add(("cancelled", self.attempt))
            raise
        log.add(("done", self.attempt))


class ArTimed(ArSlow):
    job_type = "ArTimed"
    timeout = timedelta(seconds=0.2)


class ArSlowRetried(ArSlow):
    job_type = "ArSlowRetried"
    retries = 3


class ArQuick(Job):
    queue = QUEUE
    n: int = 0

    async def perform(self) -> None:
        log.add(("quick", self.n))


class ArSyncJob(Job):
    n: int = 0

    def perform(self) -> None:
        log.add(("sync", self.n))


def async_app(make_app: Any, *, workers: int = 10, **settings: Any) -> JoobQ:
    app: JoobQ = make_app(**settings)
    jobs = [ArGather, ArFlaky, ArSlow, ArTimed, ArSlowRetried, ArQuick]
    app.queue(QUEUE, workers=workers, jobs=jobs, mode="async")
    return app


def runner_of(worker: Any) -> AsyncQueueRunner:
    runner = worker.runners[QUEUE]
    assert isinstance(runner, AsyncQueueRunner)
    return runner


def test_a_hundred_async_jobs_run_at_once_on_one_thread(make_app: Any) -> None:
    app = async_app(make_app, workers=100, worker_batch_size=100)
    ArGather.batch_enqueue([ArGather(expected=100) for _ in range(100)])
    threads_before = threading.active_count()
    worker = start(app)
    wait_until(lambda: app.stats()[QUEUE].totals["completed"] == 100, what="all 100 completed")
    threads = {thread for _, thread in log.snapshot()}
    assert len(threads) == 1  # one event loop thread ran every job
    assert threading.active_count() - threads_before < 20  # no thread per job
    assert runner_of(worker).counters["succeeded"] == 100


def test_a_failed_async_job_is_retried_after_its_backoff(make_app: Any) -> None:
    app = async_app(make_app)
    jid = ArFlaky.enqueue()
    start(app)
    wait_until(lambda: app.store.get_job(jid) is None, what="completed on its retry")
    assert [e for e in log.snapshot()] == [("run", 1), ("run", 2)]
    totals = app.stats()[QUEUE].totals
    assert (totals["retried"], totals["completed"]) == (1, 1)


def test_an_async_job_over_its_timeout_is_cancelled_and_fails_with_job_timeout(
    make_app: Any,
) -> None:
    app = async_app(make_app)
    jid = ArTimed.enqueue()
    start(app)
    record = wait_until(
        lambda: (r := app.store.get_job(jid)) and r.status is JobStatus.DEAD and r,
        what="timed out job dead",
    )
    assert record.last_error["error_class"].endswith("JobTimeout")
    assert "0.2s" in record.last_error["message"]
    assert ("cancelled", 1) in log.snapshot()
    quick = ArQuick.enqueue(n=1)  # the queue goes on
    wait_until(lambda: app.store.get_job(quick) is None, what="next job completed")


def test_a_running_async_job_is_cancelled_on_request(make_app: Any) -> None:
    app = async_app(make_app)
    jid = ArSlow.enqueue()
    start(app)
    wait_until(lambda: ("start", 1) in log.snapshot(), what="job started")
    assert app.cancel(jid) == {jid: "requested"}
    record = wait_until(
        lambda: (r := app.store.get_job(jid)) and r.status is JobStatus.DEAD and r,
        what="cancelled job dead",
    )
    assert record.dead_reason == "cancelled"
    assert ("cancelled", 1) in log.snapshot()


def test_a_paused_async_queue_starts_nothing_until_resumed(make_app: Any) -> None:
    app = async_app(make_app)
    app.pause(QUEUE)
    jid = ArQuick.enqueue()
    worker = start(app)
    runner = runner_of(worker)
    passes = runner.counters["passes"]
    wait_until(lambda: runner.counters["passes"] >= passes + 3, what="fetcher passes")
    assert app.store.get_job(jid).status is JobStatus.ENQUEUED
    app.resume(QUEUE)
    wait_until(lambda: app.store.get_job(jid) is None, what="job ran after resume")


def test_a_notification_wakes_an_idle_async_queue_long_before_the_poll(make_app: Any) -> None:
    app = async_app(make_app, poll_interval=30)
    worker = start(app)
    runner = runner_of(worker)
    wait_until(lambda: worker.listener.wait_connected(0.1), what="listener connected")
    wait_until(lambda: runner.counters["passes"] >= 1, what="first pass")
    jid = ArQuick.enqueue()
    wait_until(lambda: app.store.get_job(jid) is None, timeout=5, what="woken by NOTIFY")


def test_shutdown_lets_running_async_jobs_finish_within_the_grace(make_app: Any) -> None:
    app = async_app(make_app)
    jid = ArSlow.enqueue(seconds=0.3)
    worker = start(app)
    wait_until(lambda: ("start", 1) in log.snapshot(), what="job started")
    assert worker.stop(grace=10) is True
    assert ("done", 1) in log.snapshot()
    assert app.store.get_job(jid) is None


def test_shutdown_cancels_async_jobs_past_the_grace_and_retries_them(make_app: Any) -> None:
    app = async_app(make_app)
    jid = ArSlowRetried.enqueue()
    worker = start(app)
    wait_until(lambda: ("start", 1) in log.snapshot(), what="job started")
    assert worker.stop(grace=0.2) is False
    assert ("cancelled", 1) in log.snapshot()
    record = app.store.get_job(jid)
    assert (record.status, record.attempt) == (JobStatus.RETRYING, 1)


def test_a_throttled_async_job_not_yet_started_is_released_on_shutdown(make_app: Any) -> None:
    app: JoobQ = make_app()
    app.queue(QUEUE, workers=5, jobs=[ArQuick], mode="async", limit=1, period=60)
    first, second = ArQuick.enqueue(n=1), ArQuick.enqueue(n=2)
    worker = start(app)
    wait_until(lambda: ("quick", 1) in log.snapshot(), what="first job ran")
    wait_until(lambda: app.store.get_job(second).status is JobStatus.RUNNING, what="second claimed")
    assert worker.stop(grace=5) is True
    record = app.store.get_job(second)
    assert (record.status, record.worker_id) == (JobStatus.ENQUEUED, None)
    assert (record.attempt, record.redrive_attempt) == (1, 1)  # no run spent; attempt kept
    assert runner_of(worker).counters["released"] == 1
    assert app.store.get_job(first) is None


def test_the_heartbeat_keeps_a_long_async_job_leased(make_app: Any) -> None:
    app = async_app(make_app, lease=1)
    jid = ArSlow.enqueue(seconds=2.5)
    start(app)
    wait_until(lambda: app.store.get_job(jid) is None, what="long job completed")
    assert log.snapshot() == [("start", 1), ("done", 1)]
    assert app.stats()[QUEUE].totals["rescued"] == 0


def test_threaded_and_async_queues_run_side_by_side(make_app: Any) -> None:
    app = async_app(make_app)
    app.queue("default", workers=2, jobs=[ArSyncJob])
    start(app)
    sync_jid, async_jid = ArSyncJob.enqueue(n=1), ArQuick.enqueue(n=2)
    wait_until(lambda: app.store.get_job(sync_jid) is None, what="sync job completed")
    wait_until(lambda: app.store.get_job(async_jid) is None, what="async job completed")
    assert sorted(log.snapshot()) == [("quick", 2), ("sync", 1)]


def test_middlewares_wrap_async_jobs_and_an_async_one_sees_the_outcome(make_app: Any) -> None:
    app = async_app(make_app)

    @app.use
    def outer(job: Job, context: Any, call_next: Any) -> Any:
        log.add(("outer", context.attempt))
        return call_next()

    @app.use
    async def inner(job: Job, context: Any, call_next: Any) -> Any:
        try:
            return await call_next()
        finally:
            log.add(("inner-after", type(job).__name__))

    jid = ArQuick.enqueue(n=7)
    start(app)
    wait_until(lambda: app.store.get_job(jid) is None, what="job completed")
    assert log.snapshot() == [("outer", 1), ("quick", 7), ("inner-after", "ArQuick")]


def test_async_mode_refuses_a_job_class_with_a_sync_perform(make_app: Any) -> None:
    app: JoobQ = make_app()
    with pytest.raises(ConfigurationError, match=r"ArSyncJob.perform must be an `async def`"):
        app.queue("mixed", jobs=[ArSyncJob], mode="async")


def test_an_unknown_queue_mode_is_refused(make_app: Any) -> None:
    app: JoobQ = make_app()
    with pytest.raises(ConfigurationError, match="mode must be one of"):
        app.queue("q", jobs=[ArQuick], mode="greenlets")
