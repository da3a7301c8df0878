"""Schedules: configuration errors, DST instants with an injected clock, misfire policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from joobq_sql import ConfigurationError, Job, JoobQ, MemoryStore
from joobq_sql.scheduler.runner import SchedulerRunner


class SchedReport(Job):
    queue = "reports"
    name: str = "daily"

    def perform(self) -> None:
        pass


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def run_through(app: JoobQ, clock: FakeClock, until: datetime, step: timedelta) -> list[datetime]:
    """Drive the scheduler pass by pass with the clock, like a worker would; return the ticks
    that enqueued a job, in order. The passes are `step` apart, so a tick is up to `step` old
    when a pass gets to it: the misfire grace covers that, or each tick would count as missed."""
    runner = SchedulerRunner(
        app.store,
        list(app.schedules.values()),
        new_job=app.schedule_job,
        clock=clock,
        misfire_grace=2 * step,
    )
    seen: list[datetime] = []
    while clock.now < until:
        clock.now += step
        before = dict(app.store.last_ticks())
        if runner.run_once():
            after = app.store.last_ticks()
            seen.extend(t for name, t in after.items() if before.get(name) != t)
    return seen


def berlin_app(pattern: str, start: datetime) -> tuple[JoobQ, FakeClock]:
    clock = FakeClock(start)
    app = JoobQ(store=MemoryStore(clock=clock))
    app.cron(pattern, SchedReport, tz="Europe/Berlin")
    return app, clock


@pytest.mark.parametrize(
    ("pattern", "day", "expected"),
    [
        # Spring forward, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z).
        ("30 2 * * *", "2026-03-29", ["2026-03-29T01:00:00+00:00"]),
        ("0 3 * * *", "2026-03-29", ["2026-03-29T01:00:00+00:00"]),
        # Fall back, 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00Z).
        ("30 2 * * *", "2026-10-25", ["2026-10-25T00:30:00+00:00"]),
        ("0 3 * * *", "2026-10-25", ["2026-10-25T02:00:00+00:00"]),
    ],
)
def test_cron_in_berlin_fires_at_the_documented_instants_across_dst(
    pattern: str, day: str, expected: list[str]
) -> None:
    start = datetime.fromisoformat(f"{day}T00:00:00+00:00") - timedelta(hours=3)
    app, clock = berlin_app(pattern, start)
    ticks = run_through(app, clock, start + timedelta(hours=24), timedelta(minutes=7))
    assert [t.isoformat() for t in ticks] == expected


def test_an_hourly_cron_fires_twice_in_the_repeated_hour_of_fall_back() -> None:
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 01:00 CEST
    app, clock = berlin_app("0 * * * *", start)
    ticks = run_through(app, clock, start + timedelta(hours=3, minutes=30), timedelta(minutes=5))
    assert [t.isoformat() for t in ticks] == [
        "2026-10-25T00:00:00+00:00",  # 02:00 CEST
        "2026-10-25T01:00:00+00:00",  # 02:00 CET, the repeated hour
        "2026-10-25T02:00:00+00:00",  # 03:00 CET
    ]


def test_every_enqueues_one_job_per_interval_tick() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = FakeClock(start)
    app = JoobQ(store=MemoryStore(clock=clock))
    app.every(timedelta(minutes=15), SchedReport, name="quarterly")
    ticks = run_through(app, clock, start + timedelta(hours=1), timedelta(seconds=50))
    assert [t.minute for t in ticks] == [15, 30, 45, 0]
    assert app.store.queue_size("reports") == 4


def test_two_schedulers_on_one_store_enqueue_each_tick_once() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = FakeClock(start)
    app = JoobQ(store=MemoryStore(clock=clock))
    app.every(60, SchedReport)
    runners = [
        SchedulerRunner(app.store, list(app.schedules.values()), new_job=app.schedule_job,
                        clock=clock, misfire_grace=timedelta(seconds=40))  # passes 20 s apart
        for _ in range(2)
    ]  # fmt: skip
    for _ in range(30):
        clock.now += timedelta(seconds=20)
        for runner in runners:
            runner.run_once()
    assert app.store.queue_size("reports") == 10
    assert sum(r.enqueued for r in runners) == 10


@pytest.mark.parametrize(("misfire", "limit", "expected"), [("skip", 1, 0), ("catch_up", 3, 3)])
def test_the_misfire_policy_decides_what_happens_to_missed_ticks(
    misfire: str, limit: int, expected: int
) -> None:
    start = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)  # between two ticks
    clock = FakeClock(start)
    app = JoobQ(store=MemoryStore(clock=clock))
    schedule = app.every(60, SchedReport, name="minutely", misfire=misfire, catch_up_limit=limit)
    # The schedule last ran an hour ago; then every worker was down.
    app.store.enqueue_tick("minutely", start - timedelta(hours=1), app.schedule_job(schedule))
    app.store.clear_queue("reports")
    runner = SchedulerRunner(app.store, [schedule], new_job=app.schedule_job, clock=clock)
    assert runner.run_once() == expected
    clock.now += timedelta(seconds=31)  # a second after the next tick: on time
    assert runner.run_once() == 1  # and then it keeps its rhythm


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda app: app.cron("61 * * * *", SchedReport), "minute 61"),
        (lambda app: app.cron("0 0 * *", SchedReport), "cron pattern"),
        (lambda app: app.cron("0 * * * *", SchedReport, tz="Mars/Base"), "Mars/Base"),
        (lambda app: app.every(0, SchedReport), "interval"),
        (lambda app: app.every(-5, SchedReport), "interval"),
        (lambda app: app.every(timedelta(0), SchedReport), "interval"),
        (lambda app: app.every(10, SchedReport, name="x", misfire="later"), "misfire"),
        (lambda app: app.every(10, SchedReport, name="y", nope=1), "nope"),
        (lambda app: app.every(10, object), "Job subclass"),
    ],
)
def test_bad_schedules_are_configuration_errors(call, message: str) -> None:
    app = JoobQ(store=MemoryStore())
    with pytest.raises(ConfigurationError, match=message):
        call(app)
    assert app.schedules == {}


def test_two_schedules_with_one_name_are_refused() -> None:
    app = JoobQ(store=MemoryStore())
    app.every(60, SchedReport)
    with pytest.raises(ConfigurationError, match="defined twice"):
        app.every(60, SchedReport)
    app.every(60, SchedReport, name="the same, named apart")
    assert len(app.schedules) == 2
