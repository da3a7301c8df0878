"""Releases, lease rescues and cancels at the store level (issue 13, defects 4, 5, 6, and the
store side of 3), against PostgresStore and MemoryStore.

- `attempt` is the fencing token and never decreases: a release adds 1 to redrive_attempt
  instead, so a release spends no retry budget and a stale finish never matches again.
- The seed's jid-less release puts back only claimed-but-unstarted jobs, most recent first.
- A job with a pending cancel that is released or rescued goes to dead 'cancelled'.
- A rescued attempt its worker reported unstarted spends no budget, once in a row.
- A cancel decides on the row's current, locked state (a race test with two connections).
"""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from joobq_sql import Failure, JobStatus, MemoryStore, NewJob, Store

QUEUE = "rc"


@pytest.fixture(params=["postgres", "memory"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "postgres":
        return request.getfixturevalue("pg_store")
    return MemoryStore()


def new_job(n: int = 0, **overrides: object) -> NewJob:
    values: dict[str, object] = {
        "jid": uuid4(),
        "queue": QUEUE,
        "job_type": "ReleaseCancelJob",
        "args": {"n": n},
    }
    values.update(overrides)
    return NewJob(**values)  # type: ignore[arg-type]


def record_of(store: Store, jid: UUID):
    record = store.get_job(jid)
    assert record is not None
    return record


# -- releases never decrease the attempt ---------------------------------------------------


def test_a_release_keeps_the_attempt_and_spends_no_budget(store: Store) -> None:
    (jid,) = store.enqueue_jobs([new_job()])
    (claimed,) = store.claim_jobs(QUEUE, "w", 1)
    assert claimed.attempt == 1
    assert store.release_jobs("w", [jid]) == [jid]
    record = record_of(store, jid)
    assert (record.status, record.attempt, record.redrive_attempt) == (JobStatus.ENQUEUED, 1, 1)
    assert record.worker_id is None and record.lease_expires_at is None
    (again,) = store.claim_jobs(QUEUE, "w", 1)
    assert again.attempt == 2  # the next claim is a new fencing token


def test_a_stale_finish_after_a_release_and_a_reclaim_changes_nothing(store: Store) -> None:
    (jid,) = store.enqueue_jobs([new_job()])
    (first,) = store.claim_jobs(QUEUE, "w", 1)
    store.release_jobs("w", [jid])
    (second,) = store.claim_jobs(QUEUE, "w", 1)  # same job, same worker: only attempt differs
    assert second.attempt > first.attempt
    assert store.complete_jobs([first.completion]) == []
    stale = Failure(jid, first.attempt, "w", {"message": "late"}, retry_in=None)
    assert store.fail_jobs([stale]) == {}
    record = record_of(store, jid)
    assert (record.status, record.attempt) == (JobStatus.RUNNING, second.attempt)
    assert store.complete_jobs([second.completion]) == [jid]


def test_releases_never_use_up_a_jobs_retries(store: Store) -> None:
    (jid,) = store.enqueue_jobs([new_job(max_retries=0)])
    for _ in range(3):
        store.claim_jobs(QUEUE, "w", 1)
        store.release_jobs("w", [jid])
    record = record_of(store, jid)
    assert (record.status, record.attempt, record.retries_left) == (JobStatus.ENQUEUED, 3, 0)
    (claimed,) = store.claim_jobs(QUEUE, "w", 1)
    # The one run it is allowed: a failure with a retry asked for still goes dead.
    failure = Failure(jid, claimed.attempt, "w", {"message": "boom"}, retry_in=0)
    assert store.fail_jobs([failure]) == {jid: JobStatus.DEAD}


def test_a_released_job_that_had_failed_before_goes_back_to_retrying(store: Store) -> None:
    (jid,) = store.enqueue_jobs([new_job()])
    (first,) = store.claim_jobs(QUEUE, "w", 1)
    store.fail_jobs([Failure(jid, first.attempt, "w", {"message": "x"}, retry_in=0)])
    store.claim_jobs(QUEUE, "w", 1)
    store.release_jobs("w", [jid])
    record = record_of(store, jid)
    assert (record.status, record.attempt, record.redrive_attempt) == (JobStatus.RETRYING, 2, 1)
    assert record.retries_left == 2  # one failure of three allowed retries


# -- release_jobs(keep=...) ------------------------------------------------------------------


def test_release_with_keep_hands_back_every_other_running_job_of_the_worker(
    store: Store,
) -> None:
    a, b, c = store.enqueue_jobs([new_job(i) for i in range(3)])
    (other,) = store.enqueue_jobs([new_job(9, queue="elsewhere")])
    store.claim_jobs(QUEUE, "w", 3)
    store.claim_jobs("elsewhere", "w", 1)
    (theirs,) = store.enqueue_jobs([new_job(4)])
    store.claim_jobs(QUEUE, "w2", 1)

    released = store.release_jobs("w", queue=QUEUE, keep=[a])

    assert sorted(released) == sorted([b, c])
    assert record_of(store, a).status is JobStatus.RUNNING
    assert record_of(store, other).status is JobStatus.RUNNING  # another queue
    assert record_of(store, theirs).worker_id == "w2"  # another worker's claim
    for jid in (b, c):
        record = record_of(store, jid)
        assert (record.status, record.attempt, record.worker_id) == (JobStatus.ENQUEUED, 1, None)


def test_release_with_an_empty_keep_hands_back_all_the_workers_jobs(store: Store) -> None:
    jids = store.enqueue_jobs([new_job(i) for i in range(2)])
    store.claim_jobs(QUEUE, "w", 2)
    assert sorted(store.release_jobs("w", keep=[])) == sorted(jids)
    assert store.processing_queue_size(QUEUE) == 0


def test_release_with_both_jids_and_keep_is_refused(store: Store) -> None:
    (jid,) = store.enqueue_jobs([new_job()])
    store.claim_jobs(QUEUE, "w", 1)
    with pytest.raises(ValueError, match="keep"):
        store.release_jobs("w", [jid], keep=[jid])
    assert record_of(store, jid).status is JobStatus.RUNNING
    with pytest.raises(TypeError, match="UUID"):
        store.release_jobs("w", keep=[str(jid)])  # type: ignore[list-item]


# -- a pending cancel survives a release -----------------------------------------------------


def test_a_cancelled_then_released_job_goes_dead_cancelled(store: Store) -> None:
    (jid,) = store.enqueue_jobs([new_job()])
    store.claim_jobs(QUEUE, "w", 1)
    assert store.cancel_jobs([jid]) == {jid: "requested"}
    assert store.release_jobs("w", [jid]) == [jid]
    record = record_of(store, jid)
    assert (record.status, record.dead_reason) == (JobStatus.DEAD, "cancelled")
    assert record.dead_expires_at is not None and record.finished_at is not None
    assert record.worker_id is None and record.cancel_requested_at is None
    assert store.claim_jobs(QUEUE, "w", 1) == []
    assert store.queue_stats()[QUEUE].totals["dead"] == 1
