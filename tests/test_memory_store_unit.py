"""MemoryStore on its own: time-dependent behaviour driven by an injected clock, and thread safety.

The contract tests run MemoryStore beside PostgresStore; these pin down what needs a clock we can
move (leases, backoff, dead-letter expiry, job expiry) and need no database.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from joobq_sql import (
    Completion,
    DuplicateJobError,
    Failure,
    Job,
    JobRecord,
    JobStatus,
    MemoryStore,
    NewJob,
)
from joobq_sql.store.records import MAX_ERROR_HISTORY

QUEUE = "memunit"
START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class MutableClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class MemUnitGreet(Job):
    queue = QUEUE
    retries = 1
    name: str

    def perform(self) -> None:
        pass


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock()


@pytest.fixture
def store(clock: MutableClock) -> MemoryStore:
    return MemoryStore(lease=30, dead_letter_ttl=3600, clock=clock)


def new_job(**overrides: Any) -> NewJob:
    values: dict[str, Any] = {
        "jid": uuid.uuid4(),
        "queue": QUEUE,
        "job_type": "MemUnitGreet",
        "args": {"name": "x"},
        "max_retries": 1,
    }
    values.update(overrides)
    return NewJob(**values)


def enqueue(store: MemoryStore, **overrides: Any) -> uuid.UUID:
    return store.enqueue_jobs([new_job(**overrides)])[0]


def claim_one(store: MemoryStore, worker: str = "w1", **kwargs: Any) -> JobRecord:
    (record,) = store.claim_jobs(QUEUE, worker, 1, **kwargs)
    return record


def fail(
    store: MemoryStore, record: JobRecord, *, retry_in: float | None, message: str = "boom"
) -> JobStatus | None:
    """Report a failed run of the claimed `record`; return its new status (None: stale)."""
    error = {"message": message}
    failure = Failure(record.jid, record.attempt, record.worker_id, error, retry_in=retry_in)
    return store.fail_jobs([failure]).get(record.jid)


# -- enqueue and claim order ---------------------------------------------------------------


def test_claims_go_by_priority_then_run_at_then_insertion_order(
    store: MemoryStore, clock: MutableClock
) -> None:
    first = enqueue(store)
    second = enqueue(store)
    urgent = enqueue(store, priority=5)
    earlier = enqueue(store, run_at=START - timedelta(seconds=1))
    claimed = [r.jid for r in store.claim_jobs(QUEUE, "w1", 10)]
    assert claimed == [urgent, earlier, first, second]


def test_claim_marks_running_with_attempt_worker_and_lease(store: MemoryStore) -> None:
    enqueue(store)
    record = claim_one(store, lease=12)
    assert record.status is JobStatus.RUNNING
    assert (record.attempt, record.worker_id) == (1, "w1")
    assert record.lease_expires_at == START + timedelta(seconds=12)


def test_a_delayed_job_is_scheduled_and_runs_only_once_due(
    store: MemoryStore, clock: MutableClock
) -> None:
    jid = enqueue(store, delay=10)
    assert store.get_job(jid).status is JobStatus.SCHEDULED
    clock.advance(9.999)
    assert store.claim_jobs(QUEUE, "w1", 1) == []
    clock.advance(0.001)
    assert claim_one(store).jid == jid


def test_a_duplicate_jid_stores_nothing_and_names_the_jid(store: MemoryStore) -> None:
    existing = enqueue(store)
    fresh = new_job()
    with pytest.raises(DuplicateJobError, match=str(existing)):
        store.enqueue_jobs([fresh, new_job(jid=existing)])
    assert store.get_job(fresh.jid) is None
    with pytest.raises(DuplicateJobError, match=str(fresh.jid)):
        store.enqueue_jobs([fresh, fresh])
    assert store.get_job(fresh.jid) is None


def test_joining_a_database_transaction_is_refused(store: MemoryStore) -> None:
    with pytest.raises(TypeError, match="connection=None"):
        store.enqueue_jobs([new_job()], connection=object())


def test_callers_cannot_change_stored_values(store: MemoryStore) -> None:
    args = {"name": "x", "tags": ["a"]}
    jid = enqueue(store, args=args)
    args["tags"].append("changed")
    store.get_job(jid).args["tags"].append("changed too")
    assert store.get_job(jid).args == {"name": "x", "tags": ["a"]}


def test_a_naive_clock_is_refused(clock: MutableClock) -> None:
    store = MemoryStore(clock=lambda: datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        store.now()


# -- leases --------------------------------------------------------------------------------


def test_a_live_lease_is_never_rescued_and_an_expired_one_is(
    store: MemoryStore, clock: MutableClock
) -> None:
    enqueue(store)
    record = claim_one(store)
    clock.advance(30)  # the lease ends now; only a lease strictly in the past has expired
    assert store.rescue_expired_leases() == []
    clock.advance(0.001)
    assert store.rescue_expired_leases() == [record.jid]
    rescued = store.get_job(record.jid)
    assert (rescued.status, rescued.attempt, rescued.worker_id) == (JobStatus.ENQUEUED, 1, None)
    assert rescued.run_at == START
    assert rescued.last_error == {
        "error_type": "lease_expired",
        "message": "lease of worker w1 expired during attempt 1",
        "attempt": 1,
        "worker_id": "w1",
    }


def test_a_late_finish_of_a_rescued_run_is_fenced_out(
    store: MemoryStore, clock: MutableClock
) -> None:
    enqueue(store)
    lost = claim_one(store, "w1")
    clock.advance(31)
    store.rescue_expired_leases()
    again = claim_one(store, "w2")
    assert store.complete_jobs([lost.completion]) == []
    assert store.get_job(lost.jid).worker_id == "w2"
    assert store.complete_jobs([again.completion]) == [again.jid]
    assert store.get_job(again.jid) is None


def test_renewing_keeps_the_lease_alive(store: MemoryStore, clock: MutableClock) -> None:
    enqueue(store)
    record = claim_one(store)
    clock.advance(25)
    assert store.renew_leases("w1", [record.jid]) == {record.jid}
    assert store.renew_leases("w2", [record.jid]) == set()
    clock.advance(25)
    assert store.rescue_expired_leases() == []


def test_a_lost_last_run_goes_dead(store: MemoryStore, clock: MutableClock) -> None:
    enqueue(store, max_retries=0)
    record = claim_one(store)
    clock.advance(31)
    store.rescue_expired_leases()
    dead = store.get_job(record.jid)
    assert dead.status is JobStatus.DEAD
    assert dead.dead_reason == "lease expired on the last attempt"
    assert dead.dead_expires_at == clock() + timedelta(hours=1)
    assert store.queue_stats()[QUEUE].totals["rescued"] == 1
    assert store.queue_stats()[QUEUE].totals["dead"] == 1


def test_release_gives_back_the_latest_claims_unchanged(store: MemoryStore) -> None:
    jids = [enqueue(store) for _ in range(3)]
    store.claim_jobs(QUEUE, "w1", 3, started=False)  # as the seed API's claims
    assert store.release_jobs("w1", queue=QUEUE, limit=2) == [jids[2], jids[1]]
    released = store.get_job(jids[2])
    assert (released.status, released.attempt, released.redrive_attempt, released.worker_id) == (
        JobStatus.ENQUEUED,
        1,
        1,
        None,
    )
    assert store.get_job(jids[0]).status is JobStatus.RUNNING


# -- retries and dead letters --------------------------------------------------------------


def test_a_retry_waits_for_its_backoff(store: MemoryStore, clock: MutableClock) -> None:
    jid = enqueue(store)
    assert fail(store, claim_one(store), retry_in=10) is JobStatus.RETRYING
    assert store.get_job(jid).run_at == START + timedelta(seconds=10)
    clock.advance(9)
    assert store.claim_jobs(QUEUE, "w1", 1) == []
    assert store.due_jobs(clock() + timedelta(hours=1), 10, take=True) == []
    clock.advance(1)
    (due,) = store.due_jobs(clock(), 10, take=True)
    assert (due.jid, due.status) == (jid, JobStatus.ENQUEUED)
    assert claim_one(store).attempt == 2


def test_failing_the_last_run_goes_dead_and_is_purged_after_the_ttl(
    store: MemoryStore, clock: MutableClock
) -> None:
    jid = enqueue(store, max_retries=0)
    assert fail(store, claim_one(store), retry_in=5) is JobStatus.DEAD
    dead = store.get_job(jid)
    assert dead.dead_reason == "retries exhausted"
    assert dead.finished_at == START
    clock.advance(3599)
    assert store.purge_dead() == 0
    clock.advance(1)
    assert store.purge_dead() == 1
    assert store.get_job(jid) is None


def test_a_stale_failure_changes_nothing(store: MemoryStore) -> None:
    enqueue(store)
    record = claim_one(store)
    stale = Failure(record.jid, record.attempt + 1, "w1", {"message": "x"}, retry_in=1)
    assert store.fail_jobs([stale]) == {}
    assert store.get_job(record.jid).status is JobStatus.RUNNING


def test_the_error_history_keeps_only_the_latest_entries(
    store: MemoryStore, clock: MutableClock
) -> None:
    jid = enqueue(store, max_retries=MAX_ERROR_HISTORY + 5)
    for n in range(MAX_ERROR_HISTORY + 3):
        fail(store, claim_one(store), retry_in=0, message=f"failure {n}")
    errors = store.get_job(jid).errors
    assert len(errors) == MAX_ERROR_HISTORY
    assert errors[0]["message"] == "failure 3"
    assert errors[-1] == store.get_job(jid).last_error == {"message": f"failure {n}"}


# -- expiry and retention ------------------------------------------------------------------


def test_an_expired_job_is_never_claimed_and_goes_dead(
    store: MemoryStore, clock: MutableClock
) -> None:
    jid = enqueue(store, expires_in=60)
    clock.advance(60)
    assert store.claim_jobs(QUEUE, "w1", 1) == []
    assert store.expire_waiting_jobs() == [jid]
    dead = store.get_job(jid)
    assert (dead.status, dead.dead_reason) == (JobStatus.DEAD, "expired")
    expires_at = (START + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert dead.last_error["message"] == f"job expired at {expires_at} before it ran"
    assert store.queue_stats()[QUEUE].totals["expired"] == 1


def test_kept_completed_jobs_are_pruned_after_their_retention(clock: MutableClock) -> None:
    store = MemoryStore(keep_completed=100, clock=clock)
    jid = enqueue(store)
    store.complete_jobs([Completion(jid)])  # unfenced, and not running: no change
    assert store.get_job(jid).status is JobStatus.ENQUEUED
    store.complete_jobs([claim_one(store).completion])
    assert store.get_job(jid).status is JobStatus.COMPLETED
    clock.advance(99)
    assert store.prune_completed() == 0
    clock.advance(1)
    assert store.prune_completed() == 1


# -- stats and the seed's interface --------------------------------------------------------


def test_queue_stats_split_waiting_due_later_and_retrying(
    store: MemoryStore, clock: MutableClock
) -> None:
    enqueue(store)
    clock.advance(5)
    enqueue(store, delay=60)
    enqueue(store)
    fail(store, claim_one(store), retry_in=30)
    stats = store.queue_stats()[QUEUE]
    assert (stats.waiting, stats.due_later, stats.retrying, stats.running) == (1, 1, 1, 0)
    assert stats.oldest_waiting_age == 0.0  # the older job was claimed; the newer one is due
    assert stats.totals == {"completed": 0, "retried": 1, "dead": 0, "expired": 0, "rescued": 0}


def test_upsert_reschedules_a_known_job_and_keeps_its_args(
    store: MemoryStore, clock: MutableClock
) -> None:
    jid = enqueue(store)
    document = {"jid": jid, "job_type": "MemUnitGreet", "args": {"name": "other"}}
    store.upsert_job(document, JobStatus.SCHEDULED, delay=30)
    job = store.get_job(jid)
    assert (job.status, job.args, job.run_at) == (
        JobStatus.SCHEDULED,
        {"name": "x"},
        START + timedelta(seconds=30),
    )
    with pytest.raises(ValueError, match="dead_until"):
        store.upsert_job(document, JobStatus.DEAD)
    with pytest.raises(ValueError, match="job_type"):
        store.upsert_job({"jid": uuid.uuid4()}, JobStatus.SCHEDULED)


def test_the_seed_interface_runs_a_job_end_to_end(store: MemoryStore) -> None:
    jid = store.enqueue(MemUnitGreet(name="ada"))
    assert store.queue_size(QUEUE) == 1
    document = json.loads(store.claim_job(QUEUE, "w1"))
    assert (document["jid"], document["args"], document["attempt"]) == (jid, {"name": "ada"}, 1)
    assert store.processing_queue_size(QUEUE) == 1
    store.mark_job_completed(json.dumps(document), QUEUE)
    assert store.verify_job_removed_from_processing(jid, QUEUE)
    assert store.get_job(uuid.UUID(jid)) is None


# -- concurrency ---------------------------------------------------------------------------


def test_concurrent_claimers_never_share_a_job() -> None:
    store = MemoryStore()
    jids = store.enqueue_jobs([new_job() for _ in range(2000)])
    claimed: list[list[uuid.UUID]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def claimer(index: int) -> None:
        start.wait()
        while batch := store.claim_jobs(QUEUE, f"w{index}", 7):
            claimed[index].extend(r.jid for r in batch)
            store.complete_jobs([r.completion for r in batch[::2]])

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    counts = Counter(jid for per_thread in claimed for jid in per_thread)
    assert set(counts) == set(jids)
    assert set(counts.values()) == {1}
    # Every other claimed job was completed, the rest are still running: none is lost.
    completed = store.queue_stats()[QUEUE].totals["completed"]
    assert completed + store.count_jobs(QUEUE, JobStatus.RUNNING) == 2000
