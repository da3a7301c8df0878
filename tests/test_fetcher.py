"""The fetcher (joobq_sql/runtime/fetcher.py) on its own, without a database: its claim sizing,
its backoff after a database error, the release of a claim it never saw, its wake-up, the
pause and the stop. The loop runs in a thread through drive and ThreadSteps, as the thread
executor runs it, on a MemoryStore (a subclass of it injects the faults); a fake runner stands
in for the executor. Nothing here sleeps to assert timing: each test waits for a condition,
with a deadline far shorter than the poll interval where a wake-up is what it checks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from joobq_sql import Job, NewJob
from joobq_sql.errors import NothingSentError
from joobq_sql.runtime.fetch_steps import (
    Backoff,
    ClaimJobs,
    HandBackJobs,
    ReleaseJobs,
    Step,
    ThreadSteps,
    Wait,
    drive,
)
from joobq_sql.runtime.fetcher import ClaimSizer, Fetcher
from joobq_sql.runtime.give_backs import GiveBacks, retry_delay
from joobq_sql.settings import Settings
from joobq_sql.store.base import decode_claimed
from joobq_sql.store.memory import MemoryStore
from joobq_sql.store.records import JobRecord
from tests.helpers import wait_until

QUEUE = "fetch"
WORKER = "host:1:fetcher"
logger = logging.getLogger("joobq_sql.worker")


class FetcherNoop(Job):
    """The class the claimed rows decode to (a row of another job_type cannot run here)."""

    queue = QUEUE

    def perform(self) -> None:
        pass


# -- ClaimSizer ---------------------------------------------------------------------------------


def sizer(**options: Any) -> ClaimSizer:
    values: dict[str, Any] = {
        "workers": 4,
        "batch": 100,
        "prefetch": 0,
        "claim_ahead": 0.05,
        "gather": True,
    }
    return ClaimSizer(**(values | options))


def test_with_no_run_finished_it_claims_only_for_free_slots() -> None:
    claims = sizer()
    assert [claims.size(held) for held in (0, 1, 3, 4, 5)] == [4, 3, 1, 0, 0]


def test_a_claim_is_at_most_a_batch() -> None:
    assert sizer(workers=10, batch=3).size(0) == 3


def test_prefetch_adds_to_the_free_slots() -> None:
    assert sizer(prefetch=2).size(0) == 6


def test_short_runs_are_claimed_ahead_of_the_slots() -> None:
    claims = sizer()
    claims.ahead.ran(1e-4)  # 0.05 s x 4 slots / 0.1 ms: 2000, at most two batches
    assert claims.ahead.allowed() == 200
    assert claims.size(0) == 100
    assert claims.size(200) == 4  # 4 slots + 200 ahead, 200 held


def test_runs_longer_than_a_tenth_of_the_budget_are_not_claimed_ahead() -> None:
    claims = sizer()
    claims.ahead.ran(0.006)
    assert claims.size(0) == 4


def test_during_a_backlog_it_gathers_a_share_of_a_batch_before_claiming() -> None:
    claims = sizer()
    claims.ahead.ran(1e-4)
    claims.backlog = True
    # Claiming ahead: half of what may be held (min(batch, 200 // 2)) must be free first.
    assert claims.size(150) == 0  # 54 free
    assert claims.size(104) == 100  # 100 free
    assert sizer(gather=False, claim_ahead=0.0).size(3) == 1  # the async executor never waits


def test_during_a_backlog_with_no_claiming_ahead_it_waits_for_a_quarter_of_the_slots() -> None:
    claims = sizer(workers=8, claim_ahead=0.0)
    claims.backlog = True
    assert [claims.size(held) for held in (7, 6, 0)] == [0, 2, 8]


def test_a_long_run_stops_the_claiming_ahead_and_says_what_may_stay() -> None:
    claims = sizer()
    claims.ahead.ran(1e-4)
    now = 100.0
    assert claims.keep([now], now, idle_slots=3) is None  # no run is long
    claims.count_long([now - 1.0], now)  # one run has lasted a second: 3 usable slots
    assert claims.ahead.allowed() == 200  # still capped at two batches
    assert claims.keep([now - 1.0], now, idle_slots=3) == 203
    claims.count_long([now - 1.0] * 4, now)  # every slot is on a long run
    assert claims.ahead.allowed() == 0
    assert claims.size(4) == 0


def test_of_settings() -> None:
    settings = Settings(worker_batch_size=50, prefetch=7, claim_ahead=0.1)
    threads = ClaimSizer.of(settings, 4, ahead=True)
    assert (threads.batch, threads.prefetch, threads.ahead.budget, threads.gather) == (
        50,
        7,
        0.1,
        True,
    )
    tasks = ClaimSizer.of(settings, 4, ahead=False)
    assert (tasks.prefetch, tasks.ahead.budget, tasks.gather) == (0, 0.0, False)


def test_it_waits_at_most_half_the_budget_while_jobs_are_buffered() -> None:
    claims = sizer()
    assert claims.wait_within(1.0, []) == 1.0
    assert claims.wait_within(1.0, [object()]) == 0.025


# -- the loop -----------------------------------------------------------------------------------


class FaultyStore(MemoryStore):
    """A MemoryStore whose next claim_jobs raises `fault`, before claiming (`after` False)
    or after it claimed and returned (its rows are claimed, the caller never heard)."""

    def __init__(self) -> None:
        super().__init__()
        self.fault: Exception | None = None
        self.after = False

    def claim_jobs(self, queue: str, worker_id: str, limit: int, **options: Any) -> list[JobRecord]:
        fault, self.fault = self.fault, None
        if fault is not None and not self.after:
            raise fault
        records = super().claim_jobs(queue, worker_id, limit, **options)
        if fault is not None:
            raise fault
        return records


class FakeRunner:
    """The runner side of the fetcher (FetcherHost): it holds what is claimed in `held`, and
    claims for `slots` free slots minus what it holds."""

    def __init__(self, store: MemoryStore, *, slots: int = 10, poll: float = 60.0) -> None:
        self.name = QUEUE
        self.worker_id = WORKER
        self.settings = Settings(poll_interval=poll, unrunnable_grace=60)
        self.counters = dict.fromkeys(
            ("passes", "claims", "claimed", "handed_on", "released", "handed_back"), 0
        )
        self.slots = slots
        self.paused = False
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.held: dict[UUID, JobRecord] = {}
        self.give = GiveBacks(logger, queue=QUEUE, grace=60, worker_id=WORKER)
        self.fetcher = Fetcher(self, self.give, ClaimSizer.of(self.settings, slots, ahead=False))
        self.steps: list[Step] = []
        self._do = ThreadSteps(store, wake=self.wake, stop=self.stop)
        self.thread = threading.Thread(target=self._main, daemon=True)

    # FetcherHost
    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    def held_jids(self) -> set[UUID]:
        with self.lock:
            return set(self.held) | self.give.jids()

    def pending_acks(self) -> set[UUID]:
        return set()

    def holds_nothing(self) -> bool:
        with self.lock:
            return not (self.held or self.give.unseen_claim or self.give.jids())

    def claim_size(self) -> int:
        with self.lock:
            return self.fetcher.sizer.size(len(self.held))

    def hold(self, records: list[JobRecord]) -> bool:
        runnable, unrunnable = decode_claimed(records)
        self.give.hold_unrunnable(unrunnable)
        with self.lock:
            self.held.update((record.jid, record) for record, _ in runnable)
        return bool(unrunnable)

    def hand_on(self) -> int:
        return 0

    def wait_time(self) -> float:
        return self.settings.poll_interval

    # driving it
    def do(self, step: Step) -> Any:
        self.steps.append(step)
        return self._do(step)

    def _main(self) -> None:
        drive(self.fetcher.run(), self.do)

    def start(self) -> FakeRunner:
        self.thread.start()
        return self

    def shut(self) -> None:
        self.stop.set()
        self.wake.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the fetcher did not stop"

    def waiting(self) -> bool:
        """The fetcher is waiting for a wake-up (its last step is a Wait)."""
        return bool(self.steps) and isinstance(self.steps[-1], Wait)

    def of_kind(self, kind: type) -> list[Any]:
        return [step for step in list(self.steps) if isinstance(step, kind)]


def enqueue(store: MemoryStore, count: int, *, job_type: str = "FetcherNoop") -> list[UUID]:
    jobs = [NewJob(jid=uuid4(), queue=QUEUE, job_type=job_type, args={}) for _ in range(count)]
    return store.enqueue_jobs(jobs)


@pytest.fixture
def store() -> FaultyStore:
    return FaultyStore()


@pytest.fixture
def runner(store: FaultyStore) -> Iterator[FakeRunner]:
    fake = FakeRunner(store)
    yield fake
    fake.shut()


def test_it_claims_for_the_free_slots_and_then_waits(
    store: FaultyStore, runner: FakeRunner
) -> None:
    jids = enqueue(store, 25)
    runner.start()
    wait_until(lambda: len(runner.held) == 10, what="the free slots' jobs claimed")
    wait_until(runner.waiting, what="the fetcher waiting")
    # A full claim is followed by another at once; with every slot taken it claims no more.
    assert [step.limit for step in runner.of_kind(ClaimJobs)] == [10]
    assert set(runner.held) <= set(jids)
    assert runner.counters["claims"] == 1 and runner.counters["claimed"] == 10


def test_a_full_claim_is_followed_by_another_before_waiting(store: FaultyStore) -> None:
    runner = FakeRunner(store, slots=20)
    runner.fetcher.sizer.batch = 5
    enqueue(store, 12)
    runner.start()
    try:
        wait_until(lambda: len(runner.held) == 12, what="every job claimed")
        wait_until(runner.waiting, what="the fetcher waiting")
        claims = runner.of_kind(ClaimJobs)
        assert [step.limit for step in claims] == [5, 5, 5]  # the third came back short
        assert runner.of_kind(Wait) == [Wait(60.0)]  # no wait between the claims
    finally:
        runner.shut()


def test_a_wake_up_claims_at_once(store: FaultyStore, runner: FakeRunner) -> None:
    runner.start()
    wait_until(runner.waiting, what="the first, empty claim")
    assert runner.fetcher.empty  # it held nothing, and the claim came back empty
    enqueue(store, 3)
    runner.wake.set()  # the poll interval is a minute: only the wake-up can claim in time
    wait_until(lambda: len(runner.held) == 3, what="the jobs claimed after the wake-up")
    assert not runner.fetcher.empty


def test_after_a_database_error_it_backs_off_and_claims_again(
    store: FaultyStore, runner: FakeRunner, caplog: pytest.LogCaptureFixture
) -> None:
    enqueue(store, 2)
    store.fault = psycopg.OperationalError("the server closed the connection")
    runner.start()
    wait_until(lambda: len(runner.held) == 2, what="the jobs claimed after the backoff")
    assert runner.of_kind(Backoff) == [Backoff(retry_delay(1))]
    assert "claiming from 'fetch' failed" in caplog.text
    # The claim raised: before claiming again, it released what that claim may have taken.
    (release,) = runner.of_kind(ReleaseJobs)
    assert (release.queue, release.keep, release.jids) == (QUEUE, [], None)
    kinds = [type(step) for step in runner.steps[:4]]
    assert kinds == [ClaimJobs, Backoff, ReleaseJobs, ClaimJobs]


def test_backoffs_grow_while_the_database_stays_away(store: FaultyStore) -> None:
    class Away(FaultyStore):
        def claim_jobs(self, *args: Any, **options: Any) -> list[JobRecord]:
            raise NothingSentError("no connection")

    runner = FakeRunner(Away())
    runner.start()
    try:
        wait_until(lambda: len(runner.of_kind(Backoff)) >= 3, what="three backoffs")
        delays = [step.seconds for step in runner.of_kind(Backoff)[:3]]
        assert delays == [retry_delay(1), retry_delay(2), retry_delay(3)]
        # NothingSentError: nothing was claimed, so there is nothing to release.
        assert runner.of_kind(ReleaseJobs) == []
    finally:
        runner.shut()  # the stop ends a backoff at once (it lasts 0.4 s here)


def test_a_claim_it_never_heard_back_from_is_released_uncharged(
    store: FaultyStore, runner: FakeRunner
) -> None:
    (jid,) = enqueue(store, 1)
    store.fault = psycopg.OperationalError("lost during COMMIT")
    store.after = True  # the claim committed; the fetcher never saw its rows
    runner.start()
    wait_until(lambda: jid in runner.held, what="the job claimed again")
    record = runner.held[jid]
    assert (record.attempt, record.redrive_attempt) == (2, 1)  # the release spent no retry
    assert runner.counters["released"] == 1


def test_a_job_it_cannot_run_is_handed_back(store: FaultyStore, runner: FakeRunner) -> None:
    (jid,) = enqueue(store, 1, job_type="NoSuchJobType")
    runner.start()
    wait_until(lambda: runner.counters["handed_back"] == 1, what="the hand-back")
    (hand_back,) = runner.of_kind(HandBackJobs)
    assert [h.jid for h in hand_back.hand_backs] == [jid]
    assert runner.held == {} and runner.give.jids() == set()


def test_a_paused_queue_claims_nothing_and_counts_as_drained(
    store: FaultyStore, runner: FakeRunner
) -> None:
    runner.paused = True
    enqueue(store, 2)
    runner.start()
    wait_until(lambda: runner.fetcher.empty, what="the paused queue seen as drained")
    runner.wake.set()  # a pass while paused: still no claim
    wait_until(lambda: runner.counters["passes"] >= 2, what="a second pass")
    assert runner.of_kind(ClaimJobs) == [] and runner.held == {}
    runner.paused = False
    runner.wake.set()  # a resume wakes the fetcher (RunnerCore.set_paused)
    wait_until(lambda: len(runner.held) == 2, what="the jobs claimed on resume")


def test_a_stop_ends_the_loop_while_it_waits(store: FaultyStore) -> None:
    runner = FakeRunner(store)
    runner.start()
    wait_until(runner.waiting, what="the fetcher waiting")
    runner.shut()  # asserts the thread ended; the poll interval is a minute
    passes = runner.counters["passes"]
    lease = runner.settings.lease
    assert passes == 1 and runner.of_kind(ClaimJobs) == [ClaimJobs(QUEUE, WORKER, 10, lease)]


def test_at_shutdown_settle_gives_back_what_is_left(store: FaultyStore) -> None:
    """What a runner still holds to release at shutdown (a release that failed, jobs claimed
    as the stop began) is released by settle(), uncharged."""
    runner = FakeRunner(store)
    jids = enqueue(store, 2)
    runner.give.hold_unreleased(jids[:1])  # as if its first release had failed
    records = store.claim_jobs(QUEUE, WORKER, 2)
    assert {r.jid for r in records} == set(jids)
    drive(runner.fetcher.settle(tries=3), runner.do)
    assert runner.give.jids() == set()
    assert [step.jids for step in runner.of_kind(ReleaseJobs)] == [jids[:1]]
    assert runner.counters["released"] == 1
