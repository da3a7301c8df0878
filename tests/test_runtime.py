"""The worker runtime, in this process, against real PostgreSQL: retries, dead letters,
expiry, timeouts, concurrency, order, transactional enqueue, wake-ups, bad input.

Each JoobQ defect (JOOBQ.md) that this file covers is named in the test's docstring.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from joobq_sql import ConfigurationError, Job, JobStatus, JoobQ, MemoryStore, NewJob
from tests.helpers import wait_until
from tests.runtime_support import Recorder, start

log = Recorder()


@pytest.fixture(autouse=True)
def _fresh_log() -> None:
    log.events.clear()


class RtHello(Job):
    n: int

    def perform(self) -> None:
        log.add(("hello", self.n))


class RtFlaky(Job):
    """Fails on its first two runs, succeeds on the third."""

    retries = 3
    n: int = 0

    def perform(self) -> None:
        store = _app_of_test.store
        record = store.get_job(self.jid)
        log.add(("start", self.attempt, time.monotonic(), record.errors, _totals(store)))
        if self.attempt < 3:
            raise RuntimeError(f"flaky failure {self.attempt}")


class RtAlwaysFails(Job):
    retries = 1

    def perform(self) -> None:
        log.add(("run", self.attempt))
        raise ValueError("never works")


_app_of_test = None


def _totals(store) -> dict[str, int]:
    stats = store.queue_stats().get("default")
    return dict(stats.totals) if stats else {}


def test_a_job_failing_twice_completes_on_attempt_three_after_the_backoff_schedule(
    make_app,
) -> None:
    """JoobQ defect 1 (double failure handling): each failure makes exactly one retry."""
    global _app_of_test
    app = _app_of_test = make_app()
    app.queue("default", workers=1, jobs=[RtFlaky])
    jid = RtFlaky.enqueue()
    start(app)
    wait_until(lambda: app.store.get_job(jid) is None, timeout=20, what="job completed")
    starts = [e for e in log.snapshot() if e[0] == "start"]
    assert [attempt for _, attempt, *_ in starts] == [1, 2, 3]
    gaps = [starts[i + 1][2] - starts[i][2] for i in range(2)]
    assert 1.0 <= gaps[0] < 1.0 + 2.0  # 2^0 s
    assert 2.0 <= gaps[1] < 2.0 + 2.0  # 2^1 s
    # At the start of attempt N, exactly N-1 failures were recorded: one state change each.
    assert [len(errors) for *_, errors, _ in starts] == [0, 1, 2]
    assert [totals.get("retried", 0) for *_, totals in starts] == [0, 1, 2]
    totals = app.stats()["default"].totals
    assert (totals["completed"], totals["retried"], totals["dead"]) == (1, 2, 0)


def test_a_job_that_always_fails_dies_once_stays_dead_then_is_purged(make_app) -> None:
    """JoobQ defects 1 and 7: it dies exactly once, and the dead letter is purged at expiry."""
    app = make_app(dead_letter_ttl=1.5)
    app.queue("default", workers=2, jobs=[RtAlwaysFails])
    jid = RtAlwaysFails.enqueue()
    start(app)
    dead = wait_until(
        lambda: (r := app.store.get_job(jid)) and r.status is JobStatus.DEAD and r,
        timeout=15,
        what="job dead",
    )
    assert [e for e in log.snapshot()] == [("run", 1), ("run", 2)]  # 1 + retries runs
    assert dead.dead_reason == "retries exhausted"
    assert len(dead.errors) == 2 and dead.last_error["error_class"] == "ValueError"
    assert dead.last_error["error_type"] == "validation"
    assert dead.dead_expires_at > app.store.now()  # still kept, until its expiration
    totals = app.stats()["default"].totals
    assert (totals["retried"], totals["dead"]) == (1, 1)
    wait_until(lambda: app.store.get_job(jid) is None, timeout=10, what="dead job purged")
    assert len(log) == 2


def test_an_expired_job_never_runs(make_app) -> None:
    app = make_app()
    app.queue("default", workers=2, jobs=[RtHello])
    now = app.store.now()
    [jid] = app.store.enqueue_jobs(
        [
            NewJob(
                jid=RtHello(n=1).jid,
                queue="default",
                job_type="RtHello",
                args={"n": 1},
                run_at=now + timedelta(seconds=0.3),
                expires_at=now + timedelta(seconds=0.1),
            )
        ]
    )
    RtHello.enqueue(n=2)
    start(app)
    dead = wait_until(
        lambda: (r := app.store.get_job(jid)) and r.status is JobStatus.DEAD and r,
        timeout=10,
        what="expired job swept",
    )
    assert dead.dead_reason == "expired"
    wait_until(lambda: ("hello", 2) in log.snapshot(), what="the other job ran")
    assert ("hello", 1) not in log.snapshot()
    assert app.stats()["default"].totals["expired"] == 1


class RtSlowSync(Job):
    timeout = timedelta(seconds=0.3)
    retries = 0

    def perform(self) -> None:
        log.add(("slow-start", self.attempt))
        for _ in range(3000):  # Python-level work: the timeout interrupts it between steps
            time.sleep(0.01)
        log.add(("slow-end", self.attempt))


class RtSlowAsync(Job):
    timeout = timedelta(seconds=0.3)
    retries = 0

    async def perform(self) -> None:
        log.add(("async-start", self.attempt))
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            log.add(("async-cancelled", self.attempt))
            raise


@pytest.mark.parametrize("slow_class", [RtSlowSync, RtSlowAsync])
def test_a_job_over_its_timeout_fails_and_the_queue_keeps_working(make_app, slow_class) -> None:
    """JoobQ defect 6: timeouts were never enforced."""
    app = make_app()
    app.queue("default", workers=1, jobs=[slow_class, RtHello])
    slow = slow_class.enqueue()
    for n in range(5):
        RtHello.enqueue(n=n)
    start(app)
    wait_until(lambda: len([e for e in log.snapshot() if e[0] == "hello"]) == 5, timeout=15)
    dead = wait_until(
        lambda: (r := app.store.get_job(slow)) and r.status is JobStatus.DEAD and r, timeout=10
    )
    assert dead.last_error["error_type"] == "timeout"
    assert dead.last_error["error_class"].endswith("JobTimeout")
    assert not any(e[0] == "slow-end" for e in log.snapshot())
    if slow_class is RtSlowAsync:
        wait_until(lambda: ("async-cancelled", 1) in log.snapshot(), what="task cancelled")


class RtTimedRetry(Job):
    timeout = timedelta(seconds=0.2)
    retries = 1

    def perform(self) -> None:
        log.add(("timed", self.attempt))
        if self.attempt == 1:
            while True:
                time.sleep(0.01)


def test_a_timed_out_job_is_retried(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[RtTimedRetry])
    jid = RtTimedRetry.enqueue()
    start(app)
    wait_until(lambda: app.store.get_job(jid) is None, timeout=15, what="retry completed")
    assert [e for e in log.snapshot() if e[0] == "timed"] == [("timed", 1), ("timed", 2)]


class RtConcurrent(Job):
    n: int
    _lock = threading.Lock()
    _running = 0
    _peak = 0

    def perform(self) -> None:
        cls = type(self)
        with cls._lock:
            cls._running += 1
            cls._peak = max(cls._peak, cls._running)
        time.sleep(0.03)
        with cls._lock:
            cls._running -= 1
        log.add(("done", self.n))


def test_concurrency_never_exceeds_the_worker_count(make_app) -> None:
    """JoobQ defect 5: the worker count did not cap the jobs in flight."""
    app = make_app(worker_batch_size=20)
    app.queue("default", workers=4, jobs=[RtConcurrent])
    RtConcurrent.batch_enqueue([RtConcurrent(n=n) for n in range(60)])
    RtConcurrent._peak = 0
    start(app)
    wait_until(lambda: len(log) == 60, timeout=30)
    assert 2 <= RtConcurrent._peak <= 4


def test_one_worker_runs_jobs_of_one_priority_in_fifo_order(make_app) -> None:
    """JoobQ defect 2: JoobQ popped the newest job first."""
    app = make_app()
    app.queue("default", workers=1, jobs=[RtHello])
    for n in range(30):
        RtHello.enqueue(n=n)
    start(app)
    wait_until(lambda: len(log) == 30, timeout=20)
    assert [n for _, n in log.snapshot()] == list(range(30))


def test_higher_priority_runs_first(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[RtHello])
    RtHello.enqueue(n=1)
    RtHello.enqueue(n=2, priority=10)
    RtHello.enqueue(n=3)
    start(app)
    wait_until(lambda: len(log) == 3)
    assert [n for _, n in log.snapshot()] == [2, 1, 3]


@pytest.mark.parametrize("kind", ["connection", "session"])
def test_transactional_enqueue_commits_with_the_application(make_app, database_url, kind) -> None:
    app = make_app()
    app.queue("default", workers=2, jobs=[RtHello])
    engine = create_engine(database_url)
    try:
        for n, commit in ((1, False), (2, True)):
            if kind == "connection":
                with engine.connect() as conn:
                    transaction = conn.begin()
                    jid = RtHello.enqueue(n=n, connection=conn)
                    transaction.commit() if commit else transaction.rollback()
            else:
                with Session(engine) as session:
                    jid = RtHello.enqueue(n=n, connection=session)
                    session.commit() if commit else session.rollback()
            assert (app.store.get_job(jid) is not None) is commit
        start(app)
        wait_until(lambda: ("hello", 2) in log.snapshot(), what="committed job ran")
        assert ("hello", 1) not in log.snapshot()
    finally:
        engine.dispose()


def test_the_enqueue_api_forms_all_return_jids(make_app) -> None:
    app = make_app()
    app.queue("default", workers=2, jobs=[RtHello])
    jids = [
        RtHello.enqueue(n=1),
        RtHello(n=2).enqueue(),
        RtHello.delay(0.2, n=3),
        RtHello.delay(timedelta(milliseconds=200), n=4),
        RtHello.enqueue_at(datetime.now(UTC) + timedelta(seconds=0.2), n=5),
        *RtHello.batch_enqueue([RtHello(n=6), RtHello(n=7)]),
    ]
    assert all(isinstance(j, UUID) for j in jids) and len(set(jids)) == 7
    assert app.store.get_job(jids[2]).status is JobStatus.SCHEDULED
    assert RtHello.perform_now(n=8) is None and ("hello", 8) in log.snapshot()
    start(app)
    wait_until(lambda: len(log) == 8, timeout=10)
    assert sorted(n for _, n in log.snapshot()) == list(range(1, 9))


def test_a_notification_wakes_an_idle_worker_long_before_the_poll(make_app) -> None:
    app = make_app(poll_interval=30)
    app.queue("default", workers=1, jobs=[RtHello])
    worker = start(app)
    assert worker.listener is not None and worker.listener.wait_connected(5)
    RtHello.enqueue(n=1)
    wait_until(lambda: len(log) == 1, timeout=5, what="pickup through NOTIFY")


def test_poll_only_mode_runs_jobs(make_app) -> None:
    app = make_app(notify=False, poll_interval=0.1)
    app.queue("default", workers=1, jobs=[RtHello])
    worker = start(app)
    assert worker.listener is None
    RtHello.enqueue(n=1)
    wait_until(lambda: len(log) == 1, timeout=5)


class RtExits(Job):
    exc: str

    def perform(self) -> None:
        log.add(("exits", self.attempt))
        if self.attempt == 1:
            raise {"SystemExit": SystemExit(3), "KeyboardInterrupt": KeyboardInterrupt()}[self.exc]


@pytest.mark.parametrize("exc", ["SystemExit", "KeyboardInterrupt"])
def test_a_job_raising_a_base_exception_is_retried_and_the_worker_lives(make_app, exc) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[RtExits, RtHello])
    jid = RtExits.enqueue(exc=exc)
    start(app)
    wait_until(lambda: app.store.get_job(jid) is None, timeout=10, what="retried and done")
    RtHello.enqueue(n=1)
    wait_until(lambda: ("hello", 1) in log.snapshot(), what="the worker still runs")
    assert [e for e in log.snapshot() if e[0] == "exits"] == [("exits", 1), ("exits", 2)]


def test_a_row_of_an_unknown_job_class_is_handed_back_and_the_queue_goes_on(make_app) -> None:
    # Issue 13, defect 12: handed back for a worker that knows the type (uncharged, after a
    # backoff), not dead at once; tests/test_runtime_claims.py covers the rest.
    app = make_app()
    app.queue("default", workers=1, jobs=[RtHello])
    [ghost] = app.store.enqueue_jobs(
        [NewJob(jid=RtHello(n=0).jid, queue="default", job_type="RtGhost", args={})]
    )
    RtHello.enqueue(n=1)
    start(app)
    wait_until(lambda: ("hello", 1) in log.snapshot())
    record = wait_until(
        lambda: (
            (r := app.store.get_job(ghost)) is not None and r.attempt and r.worker_id is None and r
        )
    )
    assert record.status is JobStatus.SCHEDULED
    assert record.attempt - record.redrive_attempt == 0
    assert "RtGhost" in record.last_error["message"]


class RtDiscard(Job):
    discard_on = (KeyError,)

    def perform(self) -> None:
        log.add("discard")
        raise KeyError("missing")


def test_an_exception_marked_not_worth_retrying_goes_straight_to_dead(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[RtDiscard])
    jid = RtDiscard.enqueue()
    start(app)
    dead = wait_until(
        lambda: (r := app.store.get_job(jid)) and r.status is JobStatus.DEAD and r, timeout=10
    )
    assert dead.dead_reason.startswith("not retryable: KeyError")
    assert log.snapshot() == ["discard"]


class RtCustomBackoff(Job):
    retries = 2

    @classmethod
    def backoff(cls, attempt: int) -> float:
        return 0.05

    def perform(self) -> None:
        log.add(("custom", self.attempt, time.monotonic()))
        if self.attempt < 3:
            raise RuntimeError("again")


def test_a_job_class_can_override_the_backoff(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[RtCustomBackoff])
    jid = RtCustomBackoff.enqueue()
    start(app)
    wait_until(lambda: app.store.get_job(jid) is None, timeout=5, what="done after 3 runs")
    runs = log.snapshot()
    assert [attempt for _, attempt, _ in runs] == [1, 2, 3]
    assert runs[2][2] - runs[0][2] < 0.9  # far sooner than JoobQ's 1 s + 2 s


def test_user_middleware_wraps_perform_in_order(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[RtHello])

    @app.use
    def outer(job, context, call_next):
        log.add(("outer-before", context.attempt))
        result = call_next()
        log.add("outer-after")
        return result

    @app.use
    def inner(job, context, call_next):
        log.add("inner")
        return call_next()

    RtHello.enqueue(n=1)
    start(app)
    wait_until(lambda: "outer-after" in log.snapshot())
    assert log.snapshot() == [("outer-before", 1), "inner", ("hello", 1), "outer-after"]


def test_the_throttle_limits_starts_per_period(make_app) -> None:
    app = make_app()
    app.queue("default", workers=4, jobs=[RtConcurrent], limit=2, period=0.5)
    RtConcurrent.batch_enqueue([RtConcurrent(n=n) for n in range(6)])
    starts: list[float] = []

    @app.use
    def stamp(job, context, call_next):
        starts.append(time.monotonic())
        return call_next()

    start(app)
    wait_until(lambda: len(log) == 6, timeout=15)
    starts.sort()
    for i in range(len(starts) - 2):
        assert starts[i + 2] - starts[i] >= 0.45  # never 3 starts within one period


def test_failures_reach_the_error_monitor(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[RtAlwaysFails])
    RtAlwaysFails.enqueue()
    start(app)
    wait_until(lambda: app.errors.total() == 2, timeout=10)
    recent = app.errors.recent()
    assert [e["attempt"] for e in recent] == [2, 1]
    assert app.errors.counts_by_queue() == {"default": 2}


def test_a_crashed_worker_thread_is_restarted(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[RtHello])
    worker = start(app)
    runner = worker.runners["default"]
    original = runner._execute
    crashed = threading.Event()

    def crash_once(run):
        if not crashed.is_set():
            crashed.set()
            raise RuntimeError("a bug in the runtime")
        return original(run)

    runner._execute = crash_once
    RtHello.enqueue(n=1)
    wait_until(crashed.is_set, what="the crash")
    RtHello.enqueue(n=2)
    wait_until(lambda: ("hello", 2) in log.snapshot(), what="a restarted thread ran a job")
    # The job the crashed thread held was failed through the retry path, not stranded.
    wait_until(lambda: ("hello", 1) in log.snapshot(), timeout=10, what="the held job retried")
    assert app.stats()["default"].totals["retried"] == 1


@pytest.mark.parametrize("workers", [0, -1])
def test_a_queue_with_no_workers_is_a_configuration_error(make_app, workers) -> None:
    app = make_app()
    with pytest.raises(ConfigurationError, match="workers must be >= 1"):
        app.queue("default", workers=workers, jobs=[RtHello])


def test_bad_settings_fail_at_start_up_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="worker_batch_size"):
        JoobQ(store=MemoryStore(), worker_batch_size=0)
    with pytest.raises(ConfigurationError, match="lease"):
        JoobQ(store=MemoryStore(), lease="soon")


def test_stats_are_true_after_a_run(make_app) -> None:
    """JoobQ defect 10: counters were never written."""
    app = make_app()
    app.queue("default", workers=2, jobs=[RtHello, RtAlwaysFails])
    for n in range(5):
        RtHello.enqueue(n=n)
    RtAlwaysFails.enqueue()
    start(app)
    wait_until(lambda: app.stats()["default"].totals["dead"] == 1, timeout=10)
    wait_until(lambda: app.stats()["default"].totals["completed"] == 5, timeout=10)
    stats = app.stats()["default"]
    assert (stats.totals["retried"], stats.processed) == (1, 7)
    assert (stats.waiting, stats.running, stats.dead) == (0, 0, 1)


def test_worker_thread_restarts_are_rate_limited(make_app) -> None:
    app = make_app(restart_limit=1, restart_cooldown=1.0)
    app.queue("default", workers=1, jobs=[RtHello])
    worker = start(app)
    runner = worker.runners["default"]
    original = runner._execute
    crashes: list[float] = []
    resumed: list[float] = []

    def crash_twice(run):
        if len(crashes) < 2:
            crashes.append(time.monotonic())
            raise RuntimeError("a bug in the runtime")
        resumed.append(time.monotonic())
        return original(run)

    runner._execute = crash_twice
    for n in (1, 2, 3):  # job 3 is runnable at once: only the cooldown can delay it
        RtHello.enqueue(n=n)
    wait_until(lambda: len(crashes) == 2, timeout=10)
    wait_until(lambda: resumed, timeout=10, what="a thread restarted after the cooldown")
    # The first restart was immediate; the second within a minute went over restart_limit=1,
    # so the slot's next thread started only after the 1 s cooldown.
    assert resumed[0] - crashes[1] >= 1.0


def test_a_job_waiting_for_its_throttle_is_released_unchanged_on_shutdown(make_app) -> None:
    app = make_app()
    app.queue("default", workers=2, jobs=[RtHello], limit=1, period=3600)
    first = RtHello.enqueue(n=1)
    second = RtHello.enqueue(n=2)
    worker = start(app)
    wait_until(lambda: len(log) == 1, what="the first job ran")
    held = wait_until(
        lambda: (r := app.store.get_job(second)) and r.status is JobStatus.RUNNING and r,
        what="the second job claimed, waiting for the throttle",
    )
    assert held.attempt == 1
    wait_until(lambda: app.store.get_job(first) is None, what="the first job acknowledged")
    assert worker.stop(grace=5) is True
    released = app.store.get_job(second)
    assert (released.status, released.worker_id) == (JobStatus.ENQUEUED, None)
    # The attempt never goes back down (the fencing token); no retry was spent.
    assert (released.attempt, released.redrive_attempt) == (1, 1)
    assert log.snapshot() == [("hello", 1)]


class RtGate(Job):
    n: int
    gate = threading.Event()

    def perform(self) -> None:
        log.add(("gate", self.n))
        type(self).gate.wait(10)


def test_prefetch_claims_ahead_and_hands_the_extra_jobs_back_on_shutdown(make_app) -> None:
    RtGate.gate.clear()
    app = make_app(prefetch=3, worker_batch_size=10)
    app.queue("default", workers=1, jobs=[RtGate])
    jids = [RtGate.enqueue(n=n) for n in range(6)]
    worker = start(app)
    wait_until(lambda: ("gate", 0) in log.snapshot(), what="the first job runs")
    # One slot plus three prefetched: four claimed, two still waiting in the table.
    wait_until(lambda: app.stats()["default"].running == 4, what="prefetched jobs claimed")
    assert app.stats()["default"].waiting == 2
    stopping = threading.Thread(target=worker.stop, kwargs={"grace": 10})
    stopping.start()
    # The three prefetched jobs go back at once, unchanged, while job 0 still runs.
    wait_until(lambda: app.stats()["default"].running == 1, what="prefetched jobs released")
    released = [app.store.get_job(jid) for jid in jids[1:]]
    assert all(
        (r.status, r.attempt - r.redrive_attempt, r.worker_id) == (JobStatus.ENQUEUED, 0, None)
        for r in released
    ), "handed back without spending a run"
    RtGate.gate.set()
    stopping.join(15)
    assert log.snapshot() == [("gate", 0)]


@pytest.mark.parametrize("kind", ["connection", "session"])
def test_transactional_enqueue_commits_as_you_go(make_app, database_url, kind) -> None:
    """No explicit begin(): SQLAlchemy 2's commit-as-you-go style must keep the job too."""
    app = make_app()
    app.queue("default", workers=1, jobs=[RtHello])
    engine = create_engine(database_url)
    try:
        if kind == "connection":
            with engine.connect() as conn:
                kept = RtHello.enqueue(n=1, connection=conn)
                conn.commit()
            with engine.connect() as conn:
                dropped = RtHello.enqueue(n=2, connection=conn)
                conn.rollback()
        else:
            with Session(engine) as session:
                kept = RtHello.enqueue(n=1, connection=session)
                session.commit()
            with Session(engine) as session:
                dropped = RtHello.enqueue(n=2, connection=session)
        assert app.store.get_job(kept) is not None
        assert app.store.get_job(dropped) is None
    finally:
        engine.dispose()


def test_a_running_worker_is_listed_alive_and_forgotten_when_it_stops(make_app) -> None:
    app = make_app()
    app.queue("default", workers=1, jobs=[RtHello])
    worker = start(app)
    (alive,) = app.store.live_workers()
    assert (alive.worker_id, alive.queues) == (worker.worker_id, ("default",))
    RtHello.enqueue(n=1)
    wait_until(lambda: app.store.completed_per_minute().get("default"), what="throughput counted")
    worker.stop(grace=5)
    assert app.store.live_workers() == []
