"""A scheduler that stalls (the database down, the process paused) and then comes back: the
misfire policy decides what happens to the ticks it missed, exactly as at start-up, and no tick
another process already enqueued is enqueued again, even after its row was pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import psycopg
import pytest

from joobq_sql import Job, MemoryStore, NewJob, PostgresStore, Store
from joobq_sql.scheduler.misfire import latest_ticks
from joobq_sql.scheduler.runner import MISFIRE_GRACE, TICK_RETENTION_SECONDS, SchedulerRunner
from joobq_sql.scheduler.schedules import Schedule


class StallJob(Job):
    queue = "stalls"

    def perform(self) -> None:
        pass


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def new_job(_schedule: Schedule) -> NewJob:
    return NewJob(jid=uuid4(), queue="stalls", job_type="StallJob", args={})


def every(seconds: float, **options: object) -> Schedule:
    return Schedule.every(seconds, StallJob, name=f"every-{seconds}", fields={}, **options)


def recorded_ticks(pg: psycopg.Connection) -> list[datetime]:
    return [row[0] for row in pg.execute("SELECT tick FROM joobq.schedule_ticks ORDER BY tick")]


def job_count(pg: psycopg.Connection) -> int:
    return pg.execute("SELECT count(*) FROM joobq.jobs").fetchone()[0]


def passes(runner: SchedulerRunner, clock: FakeClock, count: int, step: timedelta) -> int:
    """`count` scheduler passes, `step` apart; how many jobs they enqueued."""
    enqueued = 0
    for _ in range(count):
        clock.now += step
        enqueued += runner.run_once()
    return enqueued


HALF_SECOND = timedelta(seconds=0.5)


def test_a_stalled_scheduler_with_misfire_skip_enqueues_none_of_the_ticks_it_missed(
    pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    clock = FakeClock(pg_store.now())
    runner = SchedulerRunner(pg_store, [every(1, misfire="skip")], new_job=new_job, clock=clock)
    runner.run_once()
    assert passes(runner, clock, 10, HALF_SECOND) == 5  # on time: one job a second
    before = set(recorded_ticks(pg))

    clock.now += timedelta(hours=1)  # the process was paused, or every pass failed
    resumed = runner.run_once()
    new = [t for t in recorded_ticks(pg) if t not in before]
    assert len(new) == resumed <= MISFIRE_GRACE.total_seconds()
    assert all(t > clock.now - MISFIRE_GRACE for t in new)  # none older than the grace

    last = max(new, default=max(before))
    assert passes(runner, clock, 6, HALF_SECOND) == 3  # and then on time again
    after = [t for t in recorded_ticks(pg) if t > last]
    assert [t - last for t in after] == [timedelta(seconds=s) for s in (1, 2, 3)]
    assert job_count(pg) == len(recorded_ticks(pg))


def test_a_stalled_scheduler_with_catch_up_enqueues_only_the_latest_missed_ticks(
    pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    clock = FakeClock(pg_store.now())
    schedule = every(1, misfire="catch_up", catch_up_limit=3)
    runner = SchedulerRunner(pg_store, [schedule], new_job=new_job, clock=clock)
    runner.run_once()
    passes(runner, clock, 4, HALF_SECOND)
    before = set(recorded_ticks(pg))

    clock.now += timedelta(hours=1)
    runner.run_once()
    horizon = clock.now - MISFIRE_GRACE
    new = [t for t in recorded_ticks(pg) if t not in before]
    missed = [t for t in new if t <= horizon]
    latest_missed = schedule.ticks(horizon - timedelta(seconds=3), horizon, 10)
    assert missed == latest_missed and len(missed) == 3  # the latest 3, oldest first
    on_time = [t for t in new if t > horizon]
    assert on_time == schedule.ticks(horizon, clock.now, 10)  # plus the ones still on time

    assert passes(runner, clock, 4, HALF_SECOND) == 2
    assert job_count(pg) == len(recorded_ticks(pg))


def test_a_stale_cursor_older_than_the_tick_retention_enqueues_no_tick_twice(
    pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    # Two schedulers of one hourly schedule, two days in the past (the database prunes by its
    # own clock). Each pass lands a second after a tick, so every tick is on time.
    hour = timedelta(hours=1)
    now = pg_store.now()
    start = now.replace(minute=0, second=0, microsecond=0) - 49 * hour + timedelta(seconds=1)
    clock = FakeClock(start)
    schedule = every(3600, misfire="catch_up", catch_up_limit=1000)
    stalled = SchedulerRunner(pg_store, [schedule], new_job=new_job, clock=clock)
    other = SchedulerRunner(pg_store, [schedule], new_job=new_job, clock=clock)
    stalled.run_once()  # its cursor: two days ago; then it is paused
    other.run_once()
    while clock.now + hour < now:
        clock.now += hour
        other.run_once()
    enqueued = len(recorded_ticks(pg))
    assert enqueued == job_count(pg) >= 47
    assert pg_store.prune_ticks(older_than=TICK_RETENTION_SECONDS) >= 20

    assert stalled.run_once() == 0  # it wakes up: every tick it would offer was enqueued
    assert job_count(pg) == enqueued


@pytest.fixture(params=["postgres", "memory"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "postgres":
        return request.getfixturevalue("pg_store")
    return MemoryStore()


def test_a_pruned_tick_is_never_enqueued_again(store: Store) -> None:
    old = store.now() - timedelta(days=3)
    ticks = [old + timedelta(seconds=s) for s in range(3)]
    for tick in ticks:
        assert store.enqueue_tick("s", tick, new_job(every(1))) is True
    assert store.prune_ticks(older_than=86400) == 2
    for tick in ticks:  # the pruned ones and the newest one alike
        assert store.enqueue_tick("s", tick, new_job(every(1))) is False
    assert store.enqueue_tick("s", ticks[0] - timedelta(seconds=1), new_job(every(1))) is False
    assert store.queue_size("stalls") == 3
    assert store.enqueue_tick("s", ticks[-1] + timedelta(seconds=1), new_job(every(1))) is True


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule.cron_pattern(
            "* * * * * *", "UTC", StallJob, name="c", fields={}, misfire="catch_up",
            catch_up_limit=2,
        ),
        Schedule.every(7, StallJob, name="e", fields={}, misfire="catch_up", catch_up_limit=2),
    ],
    ids=["cron", "every"],
)  # fmt: skip
def test_catch_up_after_days_down_enqueues_the_latest_missed_ticks(schedule: Schedule) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC))
    store = MemoryStore(clock=clock)
    runner = SchedulerRunner(store, [schedule], new_job=new_job, clock=clock)
    runner.run_once()
    clock.now += timedelta(days=3)
    runner.run_once()
    horizon = clock.now - MISFIRE_GRACE
    ticks = sorted(store._ticks[schedule.name])
    missed = [t for t in ticks if t <= horizon]
    assert missed == latest_ticks(schedule, horizon - timedelta(seconds=14), horizon, 2)
    assert len(missed) == 2 and all(horizon - t < timedelta(seconds=14) for t in missed)


def test_latest_ticks_are_all_the_ticks_when_fewer_were_missed() -> None:
    schedule = every(10)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ticks = latest_ticks(schedule, start, start + timedelta(seconds=35), 100)
    assert [(t - start).seconds for t in ticks] == [10, 20, 30]


def test_a_misfire_grace_that_is_not_a_positive_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="misfire_grace"):
        SchedulerRunner(MemoryStore(), [], new_job=new_job, misfire_grace=timedelta(0))
