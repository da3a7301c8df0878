"""Claiming at default settings (issue 15, item 1): a backlog of short jobs is claimed in
batches however few the slots, while a claimed job still never waits behind a long run.

What is asserted is behaviour (how many claims, what is held, who runs what), never a speed;
bench/ measures the speed.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from joobq_sql import Job, JobStatus, PostgresStore
from joobq_sql.runtime.claim_ahead import ClaimAhead
from joobq_sql.settings import DEFAULT_WORKERS, Settings
from joobq_sql.store.records import NewJob
from tests.helpers import wait_until
from tests.runtime_support import Recorder, start

log = Recorder()


@pytest.fixture(autouse=True)
def _fresh_log() -> None:
    log.events.clear()


class FdNoop(Job):
    n: int = 0

    def perform(self) -> None:
        log.add(("noop", self.n))


class FdLong(Job):
    """Holds a slot for 0.15 s, longer than the default claim_ahead (50 ms), and records how
    many jobs its queue runner holds (claimed, waiting or running) at its start."""

    n: int = 0
    worker: Any = None
    started = threading.Event()  # set once `worker` is: a run may begin before start() returns

    def perform(self) -> None:
        type(self).started.wait(10)
        log.add(("held", _held(type(self).worker)))
        threading.Event().wait(0.15)  # the job's work: a run of known length


class FdGate(Job):
    """Blocks its slot until the test opens the gate."""

    gate = threading.Event()

    def perform(self) -> None:
        log.add(("gate", None))
        type(self).gate.wait(30)


class CountingStore(PostgresStore):
    """The real store, counting its claim round trips."""

    claims = 0

    def claim_jobs(self, *args: Any, **kwargs: Any) -> Any:
        records = super().claim_jobs(*args, **kwargs)
        if records:
            type(self).claims += 1
        return records


def _held(worker: Any) -> int:
    """Jobs the worker's queue runner holds: claimed and not yet started, or running."""
    runner = worker.runners["default"]
    return len(runner.buffered_jids()) + len(runner.running_jids())


def _fill(store: PostgresStore, job_type: str, count: int, start_n: int = 0) -> list[uuid.UUID]:
    rows = [
        NewJob(jid=uuid.uuid4(), queue="default", job_type=job_type, args={"n": start_n + n})
        for n in range(count)
    ]
    return store.enqueue_jobs(rows, batch_size=1000)


def test_the_defaults_claim_ahead_in_batches_of_a_hundred_with_ten_workers() -> None:
    settings = Settings()
    assert (settings.worker_batch_size, settings.prefetch, settings.claim_ahead) == (100, 0, 0.05)
    assert DEFAULT_WORKERS == 10


def test_with_defaults_a_backlog_of_short_jobs_is_claimed_in_batches(
    make_app, database_url
) -> None:
    """A queue with one worker (the worst case: one free slot at a time) and no setting
    changed claims its backlog of no-op jobs many per round trip: fewer claims than half the
    jobs. (Before: one claim per job, since only free slots were claimed.)"""
    CountingStore.claims = 0
    store = CountingStore(database_url)
    app = make_app(store=store)
    app.queue("default", workers=1, jobs=[FdNoop])
    jobs = 600
    _fill(store, "FdNoop", jobs)
    start(app)
    wait_until(lambda: len(log) == jobs, timeout=60, what="the backlog to be drained")
    assert sorted(n for _, n in log.snapshot()) == list(range(jobs)), "each job ran once"
    assert CountingStore.claims < jobs / 2, f"{CountingStore.claims} claims for {jobs} jobs"


def test_a_queue_of_long_jobs_never_holds_more_than_its_slots(make_app) -> None:
    """Runs of 0.15 s, past claim_ahead: nothing is claimed ahead of the two slots, so no
    claimed job waits in this worker behind a long run (watched at every start, and polled:
    it holds at most 2 jobs)."""
    app = make_app()
    app.queue("default", workers=2, jobs=[FdLong])
    jobs = 8
    _fill(app.store, "FdLong", jobs)
    held: list[int] = []
    FdLong.started.clear()
    FdLong.worker = worker = start(app)
    FdLong.started.set()

    def drained() -> bool:
        held.append(_held(worker))
        return len(log) == jobs and not app.store.count_jobs("default", JobStatus.ENQUEUED)

    wait_until(drained, timeout=60, what="every long job to run")
    seen = [count for _, count in log.snapshot()] + held
    assert max(seen) <= 2, f"at most the 2 slots' jobs are held, saw {seen}"
    assert worker.runners["default"].counters["claimed"] == jobs


def test_a_long_runs_buffered_claims_are_handed_back_and_run_elsewhere(
    make_app, database_url, pg
) -> None:
    """Worker A (one slot) claims ahead while its runs are short; then a run blocks. The jobs
    it had claimed behind that run are handed back unchanged (no retry spent) and worker B
    runs them all while A's run still blocks."""
    FdGate.gate.clear()
    first = make_app(claim_ahead=0.2)  # a wider budget: the no-op runs look short under load
    first.queue("default", workers=1, jobs=[FdNoop, FdGate])
    store = first.store
    _fill(store, "FdNoop", 4)
    store.enqueue_jobs([NewJob(jid=uuid.uuid4(), queue="default", job_type="FdGate", args={})])
    tail = _fill(store, "FdNoop", 60, start_n=100)
    a = start(first)

    def running() -> int:
        return first.stats()["default"].running

    wait_until(lambda: ("gate", None) in log.snapshot(), what="the blocking run to start")
    # A claimed ahead of its one slot (jobs behind the blocking run) ...
    counters = a.runners["default"].counters
    wait_until(lambda: counters["claimed"] > 5, what="worker A to claim ahead of its slot")
    # ... and hands them back once the run is long: only the blocking run stays claimed.
    wait_until(lambda: running() == 1, timeout=30, what="the buffered jobs to be handed back")
    assert counters["handed_on"] > 0
    waiting = pg.execute(
        "SELECT count(*) FROM joobq.jobs WHERE queue = 'default' AND status = 'enqueued' "
        "AND worker_id IS NULL AND attempt = redrive_attempt AND attempt > 0"
    ).fetchone()[0]
    assert waiting == counters["handed_on"], "released unchanged, no retry spent"

    second = make_app()
    second.queue("default", workers=1, jobs=[FdNoop, FdGate])
    start(second)
    done = {100 + n for n in range(len(tail))}
    wait_until(
        lambda: done <= {n for kind, n in log.snapshot() if kind == "noop"},
        timeout=30,
        what="worker B to run the jobs handed back",
    )
    wait_until(lambda: running() == 1, what="B's acknowledgements, A's run still claimed")
    assert not FdGate.gate.is_set(), "all while A's run still blocks"
    FdGate.gate.set()
    wait_until(lambda: not store.count_jobs("default", JobStatus.RUNNING), what="the gate job")
    assert [e for e in log.snapshot() if e[0] == "gate"] == [("gate", None)]


# -- the claim-ahead rule ------------------------------------------------------------------------


def test_nothing_is_claimed_ahead_before_a_run_has_finished_or_when_runs_are_long() -> None:
    ahead = ClaimAhead(budget=0.05, workers=4, batch=100)
    assert ahead.allowed() == 0, "no estimate yet: free slots only"
    ahead.ran(1.0)
    assert ahead.allowed() == 0, "runs of a second: free slots only"


def test_short_runs_allow_a_budgets_worth_ahead_up_to_two_batches() -> None:
    ahead = ClaimAhead(budget=0.05, workers=2, batch=100)
    ahead.ran(0.0001)
    assert ahead.allowed() == 200, "two batches"
    short = ClaimAhead(budget=0.05, workers=2, batch=100)
    short.ran(0.001)
    assert short.allowed() == 100, "50 ms per slot of 1 ms runs, two slots"
    medium = ClaimAhead(budget=0.05, workers=2, batch=100)
    medium.ran(0.01)
    assert medium.allowed() == 0, "10 ms runs are not short: free slots only"


def test_a_long_run_takes_its_slot_out_of_the_allowance_and_asks_for_a_hand_back() -> None:
    ahead = ClaimAhead(budget=0.05, workers=2, batch=100)
    ahead.ran(0.002)
    now = 100.0
    assert ahead.keep([now - 0.01, now - 0.051], now, prefetch=0) is None, "no run is long"
    assert ahead.keep([now - 1.0, now - 0.01], now, prefetch=0) == 25, "one usable slot"
    assert ahead.keep([now - 1.0, now - 2.0], now, prefetch=3) == 3, "only the prefetch stays"


def test_a_zero_budget_never_claims_ahead() -> None:
    ahead = ClaimAhead(budget=0.0, workers=2, batch=100)
    ahead.ran(0.00001)
    assert ahead.allowed() == 0
    assert ahead.keep([0.0], 100.0, prefetch=0) is None
