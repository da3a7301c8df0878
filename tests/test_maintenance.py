"""Maintenance duties and the Maintainer that runs them.

The duties' effects are checked on both stores (PostgresStore on a real PostgreSQL, and
MemoryStore); the Maintainer's scheduling and error handling use small fake duties. Waiting for
time to pass polls a condition with a deadline; nothing sleeps a fixed time hoping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from joobq_sql import Job, JobStatus, MemoryStore, NewJob, PostgresStore, Store
from joobq_sql.runtime.maintenance import (
    CompletedPruner,
    DeadPurger,
    Duty,
    ExpirySweeper,
    LeaseRescuer,
    Maintainer,
)
from tests.helpers import wait_until

QUEUE = "maint"
#: Nothing listens on port 1, so every connection is refused.
UNREACHABLE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/x?connect_timeout=1"


class MaintJob(Job):
    queue = QUEUE
    n: int = 0

    def perform(self) -> None:
        pass


class MutableClock:
    """A clock the test moves by hand, for MemoryStore."""

    def __init__(self) -> None:
        self.current = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class FakeDuty(Duty):
    """A duty whose passes the test scripts: it raises while `failures` remain, then touches
    `per_pass` jobs a pass."""

    def __init__(self, name: str, *, interval: float = 60.0, failures: int = 0) -> None:
        self.name = name  # type: ignore[misc] - the fakes need distinct names per instance
        super().__init__(interval=interval)
        self.failures = failures
        self.calls = 0

    def run_pass(self, limit: int) -> int:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise RuntimeError(f"{self.name} broke")
        return 0


@pytest.fixture(params=["postgres", "memory"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "postgres":
        return request.getfixturevalue("pg_store")
    return MemoryStore()


def new_job(**overrides: Any) -> NewJob:
    values: dict[str, Any] = {
        "jid": uuid4(),
        "queue": QUEUE,
        "job_type": "MaintJob",
        "args": {"n": 0},
    }
    values.update(overrides)
    return NewJob(**values)


def enqueue(store: Store, **overrides: Any) -> UUID:
    return store.enqueue_jobs([new_job(**overrides)])[0]


def status_of(store: Store, jid: UUID) -> JobStatus | None:
    record = store.get_job(jid)
    return None if record is None else record.status


def unix_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def run_until_stopped(maintainer: Maintainer) -> Callable[[], None]:
    """Start `maintainer`; the returned function stops it and checks it stopped promptly."""
    maintainer.start()

    def stop() -> None:
        began = time.monotonic()
        assert maintainer.stop(timeout=5)
        assert time.monotonic() - began < 1.0

    return stop


def make_due_now(maintainer: Maintainer) -> None:
    """Skip the wait for every duty's next run (the maintainer's clock is the real one)."""
    for schedule in maintainer._schedules:
        schedule.due = 0.0


# -- LeaseRescuer ------------------------------------------------------------------------------


def test_rescuer_requeues_a_job_whose_lease_expired(store: Store) -> None:
    jid = enqueue(store)
    store.claim_jobs(QUEUE, "w1", 1, lease=0.2)
    rescuer = LeaseRescuer(store, interval=1)

    assert wait_until(rescuer.run_once, what="the lease to expire and be rescued") == 1
    record = store.get_job(jid)
    assert record.status is JobStatus.ENQUEUED
    assert record.worker_id is None
    assert record.last_error["error_type"] == "lease_expired"


def test_rescuer_leaves_a_live_lease_alone(store: Store) -> None:
    jid = enqueue(store)
    store.claim_jobs(QUEUE, "w1", 1, lease=60)

    assert LeaseRescuer(store, interval=1).run_once() == 0
    assert status_of(store, jid) is JobStatus.RUNNING


# -- ExpirySweeper -----------------------------------------------------------------------------


def test_sweeper_sends_an_expired_waiting_job_to_dead_as_expired(store: Store) -> None:
    expired = enqueue(store, expires_at=store.now() - timedelta(seconds=1))
    fresh = enqueue(store, expires_in=3600)

    assert ExpirySweeper(store, interval=1).run_once() == 1
    record = store.get_job(expired)
    assert record.status is JobStatus.DEAD
    assert record.dead_reason == "expired"
    assert status_of(store, fresh) is JobStatus.ENQUEUED


def test_sweeper_drains_a_backlog_in_one_run_with_passes_of_limit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    past = store.now() - timedelta(seconds=1)
    store.enqueue_jobs([new_job(expires_at=past) for _ in range(2500)])
    limits: list[int] = []
    original = store.expire_waiting_jobs

    def counted(*, limit: int) -> list[UUID]:
        limits.append(limit)
        return original(limit=limit)

    monkeypatch.setattr(store, "expire_waiting_jobs", counted)
    sweeper = ExpirySweeper(store, interval=60, limit=1000)

    assert sweeper.run_once() == 2500
    assert limits == [1000, 1000, 1000]
    assert not sweeper.backlogged
    assert store.count_jobs(QUEUE, JobStatus.DEAD) == 2500


def test_a_run_stops_at_its_pass_cap_and_the_maintainer_reruns_it_at_once() -> None:
    store = MemoryStore()
    past = store.now() - timedelta(seconds=1)
    store.enqueue_jobs([new_job(expires_at=past) for _ in range(50)])
    sweeper = ExpirySweeper(store, interval=3600, limit=10, max_passes=2)
    maintainer = Maintainer([sweeper])

    assert maintainer.run_pending() == 0.0  # 20 of 50 swept; due again without an interval
    assert sweeper.backlogged
    assert maintainer.stats()["expiry_sweeper"]["touched"] == 20
    maintainer.run_pending()
    maintainer.run_pending()
    assert maintainer.stats()["expiry_sweeper"]["touched"] == 50
    assert maintainer.run_pending() > 3000  # drained: back to its interval


# -- DeadPurger --------------------------------------------------------------------------------


def test_purger_deletes_a_dead_job_past_its_expiration_and_keeps_one_not(store: Store) -> None:
    gone, kept = MaintJob(n=1), MaintJob(n=2)
    store.mark_as_dead(gone, unix_ms(store.now() - timedelta(seconds=1)))
    store.mark_as_dead(kept, unix_ms(store.now() + timedelta(hours=1)))

    assert DeadPurger(store, interval=1).run_once() == 1
    assert store.get_job(gone.jid) is None
    assert status_of(store, kept.jid) is JobStatus.DEAD


# -- CompletedPruner ---------------------------------------------------------------------------


@pytest.fixture(params=["postgres", "memory"])
def keeping_store(request: pytest.FixtureRequest) -> Store:
    """A store that keeps completed jobs for 0.2 seconds."""
    if request.param == "postgres":
        return PostgresStore(request.getfixturevalue("pg_store").engine, keep_completed=0.2)
    return MemoryStore(keep_completed=0.2)


def complete_one(store: Store) -> UUID:
    enqueue(store)
    (record,) = store.claim_jobs(QUEUE, "w1", 1)
    assert store.complete_jobs([record.completion]) == [record.jid]
    return record.jid


def test_pruner_deletes_kept_completed_jobs_past_retention(keeping_store: Store) -> None:
    jid = complete_one(keeping_store)
    pruner = CompletedPruner(keeping_store, interval=1)

    assert wait_until(pruner.run_once, what="the retention to pass") == 1
    assert keeping_store.get_job(jid) is None


def test_pruner_keeps_completed_jobs_within_retention() -> None:
    clock = MutableClock()
    store = MemoryStore(keep_completed=60, clock=clock)
    jid = complete_one(store)
    pruner = CompletedPruner(store, interval=1)

    clock.advance(59)
    assert pruner.run_once() == 0
    assert status_of(store, jid) is JobStatus.COMPLETED
    clock.advance(1)
    assert pruner.run_once() == 1


def test_pruner_is_a_no_op_when_completed_jobs_are_not_kept(store: Store) -> None:
    complete_one(store)
    assert CompletedPruner(store, interval=1).run_once() == 0


# -- constructor checks ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_a_duty_refuses_an_interval_that_is_not_positive(bad: float) -> None:
    with pytest.raises(ValueError, match=rf"lease_rescuer interval .*{bad}"):
        LeaseRescuer(MemoryStore(), interval=bad)


def test_a_duty_refuses_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="dead_purger limit must be >= 1, got 0"):
        DeadPurger(MemoryStore(), interval=1, limit=0)


def test_a_duty_needs_a_store() -> None:
    with pytest.raises(TypeError, match="expiry_sweeper needs a Store, got str"):
        ExpirySweeper("postgresql://nowhere", interval=1)  # type: ignore[arg-type]


def test_the_maintainer_refuses_no_duties_and_repeated_names() -> None:
    with pytest.raises(ValueError, match="at least one duty"):
        Maintainer([])
    store = MemoryStore()
    with pytest.raises(ValueError, match="'dead_purger' appears more than once"):
        Maintainer([DeadPurger(store, interval=1), DeadPurger(store, interval=2)])


# -- Maintainer --------------------------------------------------------------------------------


def test_maintainer_runs_every_duty_on_its_thread_and_stops_within_a_second(
    store: Store,
) -> None:
    lost = enqueue(store)
    store.claim_jobs(QUEUE, "w1", 1, lease=0.2)
    expired = enqueue(store, expires_at=store.now() - timedelta(seconds=1))
    duties = [
        LeaseRescuer(store, interval=0.05),
        ExpirySweeper(store, interval=0.05),
        DeadPurger(store, interval=0.05),
        CompletedPruner(store, interval=0.05),
    ]
    maintainer = Maintainer(duties)
    stop = run_until_stopped(maintainer)
    try:
        wait_until(
            lambda: status_of(store, lost) is JobStatus.ENQUEUED,
            what="the rescuer, on the maintainer's thread",
        )
        assert status_of(store, expired) is JobStatus.DEAD
        stats = maintainer.stats()
        assert all(s["runs"] >= 1 and s["errors"] == 0 for s in stats.values()), stats
        assert stats["lease_rescuer"]["touched"] == 1
        assert stats["expiry_sweeper"]["touched"] == 1
    finally:
        stop()
    assert not maintainer.running


def test_a_duty_that_raises_does_not_stop_the_maintainer_and_is_counted() -> None:
    broken = FakeDuty("broken", interval=0.01, failures=1_000_000)
    healthy = FakeDuty("healthy", interval=0.01)
    seen: list[tuple[str, str]] = []
    maintainer = Maintainer(
        [broken, healthy], on_error=lambda duty, exc: seen.append((duty.name, str(exc)))
    )
    stop = run_until_stopped(maintainer)
    try:
        wait_until(
            lambda: (
                maintainer.stats()["broken"]["errors"] >= 3
                and maintainer.stats()["healthy"]["runs"] >= 3
            ),
            what="both duties to run repeatedly",
        )
        assert maintainer.running
    finally:
        stop()
    stats = maintainer.stats()
    assert stats["broken"]["runs"] == 0
    assert stats["broken"]["last_error"] == "RuntimeError: broken broke"
    assert stats["healthy"]["errors"] == 0
    assert seen[0] == ("broken", "broken broke")


def test_a_failing_duty_is_retried_with_a_backoff_capped_at_its_interval() -> None:
    slow = FakeDuty("slow", interval=60, failures=2)
    maintainer = Maintainer([slow])

    assert maintainer.run_pending() == pytest.approx(1.0, abs=0.1)  # first retry soon
    make_due_now(maintainer)
    assert maintainer.run_pending() == pytest.approx(2.0, abs=0.1)  # then twice as late
    make_due_now(maintainer)
    assert maintainer.run_pending() == pytest.approx(60.0, abs=0.1)  # recovered: its interval
    assert maintainer.stats()["slow"] == {
        "runs": 1,
        "touched": 0,
        "errors": 2,
        "consecutive_errors": 0,
        "last_error": "RuntimeError: slow broke",
    }

    quick = Maintainer([FakeDuty("quick", interval=0.3, failures=1)])
    assert quick.run_pending() <= 0.3  # the backoff never exceeds the interval


def test_a_failing_on_error_hook_is_logged_and_the_duty_still_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def hook(duty: Duty, exc: BaseException) -> None:
        raise ValueError("hook broke too")

    maintainer = Maintainer([FakeDuty("flaky", interval=0.01, failures=1)], on_error=hook)
    maintainer.run_pending()
    assert "on_error hook failed for maintenance duty flaky" in caplog.text

    def retried() -> int:
        maintainer.run_pending()
        return maintainer.stats()["flaky"]["runs"]

    wait_until(retried, what="the retry after the backoff")
    assert maintainer.stats()["flaky"]["errors"] == 1


def test_maintainer_keeps_running_while_the_database_is_unreachable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = PostgresStore(UNREACHABLE_URL, keep_completed=60)
    duties = [
        LeaseRescuer(store, interval=0.05),
        ExpirySweeper(store, interval=0.05),
        DeadPurger(store, interval=0.05),
        CompletedPruner(store, interval=0.05),
    ]
    maintainer = Maintainer(duties)
    caplog.set_level(logging.WARNING, logger="joobq_sql.runtime.maintenance")
    stop = run_until_stopped(maintainer)
    try:
        wait_until(
            lambda: all(s["errors"] >= 2 for s in maintainer.stats().values()),
            what="every duty to fail and be retried",
        )
        assert maintainer.running
    finally:
        stop()
        store.close()
    assert all(s["runs"] == 0 and s["last_error"] for s in maintainer.stats().values())
    assert any("lease_rescuer failed" in r.getMessage() for r in caplog.records)


def test_stop_interrupts_the_wait_for_the_next_interval() -> None:
    duty = FakeDuty("hourly", interval=3600)
    maintainer = Maintainer([duty])
    stop = run_until_stopped(maintainer)
    wait_until(lambda: maintainer.stats()["hourly"]["runs"] == 1, what="the first run")
    stop()  # waiting out the hour would fail its one-second check
    assert duty.calls == 1


def test_a_maintainer_starts_only_once() -> None:
    maintainer = Maintainer([FakeDuty("once")])
    maintainer.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            maintainer.start()
    finally:
        assert maintainer.stop(timeout=5)


def test_sweepers_running_at_once_share_a_backlog_without_touching_a_job_twice(
    pg_store: PostgresStore,
) -> None:
    past = pg_store.now() - timedelta(seconds=1)
    pg_store.enqueue_jobs([new_job(expires_at=past) for _ in range(500)])
    sweepers = [ExpirySweeper(pg_store, interval=60, limit=20) for _ in range(4)]
    totals: list[int] = []
    barrier = threading.Barrier(len(sweepers))

    def sweep(sweeper: ExpirySweeper) -> None:
        barrier.wait()
        totals.append(sweeper.run_once())

    threads = [threading.Thread(target=sweep, args=(s,)) for s in sweepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(totals) == 500  # SKIP LOCKED: no job swept twice, none missed
    assert pg_store.count_jobs(QUEUE, JobStatus.DEAD) == 500
