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

import threading
from uuid import UUID, uuid4

import psycopg
import pytest

from joobq_sql import Failure, Job, JobStatus, MemoryStore, NewJob, Store
from joobq_sql.store.postgres.queries import Queries
from tests.conftest import libpq_url
from tests.helpers import wait_until

QUEUE = "rc"


class ReleaseCancelJob(Job):
    """The job type of these tests' rows (the seed API's claims decode them)."""

    queue = QUEUE
    n: int

    def perform(self) -> None:
        pass


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


# -- the seed's jid-less release: unstarted claims only, most recent first -------------------


def test_the_seed_apis_claims_are_marked_unstarted(store: Store) -> None:
    seed, runtime = store.enqueue_jobs([new_job(1, priority=1), new_job(2)])
    store.claim_job(QUEUE, "w")  # the seed API: handed to a caller, not started yet
    assert record_of(store, seed).started is False
    (claimed,) = store.claim_jobs(QUEUE, "w", 1)  # the runtime: unknown until it renews
    assert claimed.started is None and record_of(store, runtime).started is None


def test_the_jidless_release_never_releases_a_started_job(store: Store) -> None:
    running, waiting = store.enqueue_jobs([new_job(1), new_job(2)])
    store.claim_jobs_batch(QUEUE, "w", None, 2)
    # The worker's lease renewal reports one job started, the other still waiting.
    assert store.renew_leases("w", [running, waiting], unstarted=[waiting]) == {running, waiting}
    store.release_job_claims_batch(QUEUE, "w", 2)
    assert record_of(store, running).status is JobStatus.RUNNING
    assert record_of(store, waiting).status is JobStatus.ENQUEUED
    store.release_job_claim(QUEUE, "w")  # nothing unstarted is left: nothing moves
    assert record_of(store, running).status is JobStatus.RUNNING


def test_the_jidless_release_never_releases_a_runtime_claim_of_unknown_state(
    store: Store,
) -> None:
    (jid,) = store.enqueue_jobs([new_job()])
    store.claim_jobs(QUEUE, "w", 1)  # started unknown: counted as started
    store.release_job_claims_batch(QUEUE, "w", 10)
    assert record_of(store, jid).status is JobStatus.RUNNING


def test_the_jidless_release_puts_back_the_most_recent_claim_first(store: Store) -> None:
    # Inserted first but claimed last: insertion order and claim order disagree.
    older_row, newer_row = store.enqueue_jobs([new_job(1), new_job(2, priority=5)])
    assert store.claim_job(QUEUE, "w") is not None  # newer_row (higher priority)
    assert store.claim_job(QUEUE, "w") is not None  # older_row, the most recent claim
    store.release_job_claim(QUEUE, "w")
    assert record_of(store, older_row).status is JobStatus.ENQUEUED
    assert record_of(store, newer_row).status is JobStatus.RUNNING


def test_a_cancel_request_does_not_make_a_running_claim_look_recent(store: Store) -> None:
    """The seed client runs its first claim and cancels it; releasing the two most recent
    claims must give back the two it never started, not the one it runs (a cancel request
    once moved updated_at, the claim time the jid-less release orders by)."""
    first, second, third = store.enqueue_jobs([new_job(1), new_job(2), new_job(3)])
    for _ in range(3):
        assert store.claim_job(QUEUE, "w") is not None
    assert store.cancel_jobs([first]) == {first: "requested"}
    store.release_job_claims_batch(QUEUE, "w", 2)
    assert record_of(store, first).status is JobStatus.RUNNING
    assert record_of(store, first).cancel_requested_at is not None
    assert record_of(store, second).status is JobStatus.ENQUEUED
    assert record_of(store, third).status is JobStatus.ENQUEUED


# -- lease renewals report which jobs have started -------------------------------------------


def test_renew_leases_marks_started_and_unstarted_jobs(store: Store) -> None:
    a, b, c = store.enqueue_jobs([new_job(i) for i in range(3)])
    store.claim_jobs(QUEUE, "w", 3)
    assert store.renew_leases("w", [a, b, c], unstarted=[b, c]) == {a, b, c}
    assert [record_of(store, j).started for j in (a, b, c)] == [True, False, False]
    # b has started since; a stays started even if reported waiting (true is sticky).
    store.renew_leases("w", [a, b, c], unstarted=[a, c])
    assert [record_of(store, j).started for j in (a, b, c)] == [True, True, False]
    # Without an unstarted list, every renewed job counts as started.
    store.renew_leases("w", [c])
    assert record_of(store, c).started is True


def test_renew_leases_marks_only_the_jobs_it_renews(store: Store) -> None:
    mine, theirs = store.enqueue_jobs([new_job(1), new_job(2)])
    store.claim_jobs(QUEUE, "w", 1)
    store.claim_jobs(QUEUE, "w2", 1)
    assert store.renew_leases("w", [mine, theirs], unstarted=[theirs]) == {mine}
    assert record_of(store, mine).started is True
    assert record_of(store, theirs).started is None  # another worker's claim: untouched
    with pytest.raises(TypeError, match="UUID"):
        store.renew_leases("w", [mine], unstarted=[str(mine)])  # type: ignore[list-item]


def test_a_new_claim_forgets_the_previous_attempts_started_mark(store: Store) -> None:
    (jid,) = store.enqueue_jobs([new_job()])
    (first,) = store.claim_jobs(QUEUE, "w", 1)
    store.renew_leases("w", [jid])
    assert record_of(store, jid).started is True
    store.fail_jobs([Failure(jid, first.attempt, "w", {"message": "x"}, retry_in=0)])
    store.claim_jobs(QUEUE, "w", 1)
    assert record_of(store, jid).started is None


# -- lease rescue: pending cancels and unstarted attempts ------------------------------------


def test_a_cancelled_then_rescued_job_goes_dead_cancelled(store: Store) -> None:
    (jid,) = store.enqueue_jobs([new_job()])
    store.claim_jobs(QUEUE, "crashed", 1, lease=0.1)
    assert store.cancel_jobs([jid]) == {jid: "requested"}
    assert wait_until(lambda: store.rescue_expired_leases(), what="lease expiry") == [jid]
    record = record_of(store, jid)
    assert (record.status, record.dead_reason) == (JobStatus.DEAD, "cancelled")
    assert record.cancel_requested_at is None and record.dead_expires_at is not None
    assert record.last_error is not None and record.last_error["error_type"] == "lease_expired"
    totals = store.queue_stats()[QUEUE].totals
    assert (totals["rescued"], totals["dead"]) == (1, 1)


def test_a_rescued_attempt_reported_unstarted_keeps_its_budget_once_in_a_row(
    store: Store,
) -> None:
    (jid,) = store.enqueue_jobs([new_job(max_retries=0)])  # one run allowed, no retry
    store.claim_jobs(QUEUE, "w", 1)
    store.renew_leases("w", [jid], unstarted=[jid], lease=0.1)  # waiting in w's buffer
    wait_until(lambda: store.rescue_expired_leases(), what="lease expiry")
    record = record_of(store, jid)
    # Its last attempt, but it never started: requeued, not dead, and not charged.
    assert (record.status, record.attempt, record.redrive_attempt) == (JobStatus.ENQUEUED, 1, 1)
    assert record.last_error is not None
    assert record.last_error["error_type"] == "lease_expired_unstarted"
    assert record.started is None

    # Rescued unstarted again, in a row: charged this time, so it cannot loop for free.
    store.claim_jobs(QUEUE, "w", 1)
    store.renew_leases("w", [jid], unstarted=[jid], lease=0.1)
    wait_until(lambda: store.rescue_expired_leases(), what="lease expiry")
    record = record_of(store, jid)
    assert (record.status, record.dead_reason) == (
        JobStatus.DEAD,
        "lease expired on the last attempt",
    )
    assert record.last_error is not None and record.last_error["error_type"] == "lease_expired"
    totals = store.queue_stats()[QUEUE].totals
    assert (totals["rescued"], totals["dead"]) == (2, 1)


def test_a_job_rescued_as_unstarted_is_not_expired_but_run(store: Store) -> None:
    """The unstarted mark can lag a start by one lease renewal (a buffered job starts, then
    its worker dies before the next renewal), so a job rescued as unstarted may have run:
    the expiry sweep must not kill it as 'expired before it ran'; it runs again instead."""
    (jid,) = store.enqueue_jobs([new_job(expires_in=0.5)])
    store.claim_jobs(QUEUE, "w", 1)
    store.renew_leases("w", [jid], unstarted=[jid], lease=0.1)  # buffered at the last renewal
    wait_until(lambda: store.rescue_expired_leases(), what="lease expiry")
    assert record_of(store, jid).last_error["error_type"] == "lease_expired_unstarted"
    wait_until(lambda: record_of(store, jid).expires_at <= store.now(), what="expiry time")
    assert store.expire_waiting_jobs() == []
    [claimed] = store.claim_jobs(QUEUE, "w2", 1)
    assert claimed.jid == jid


def test_a_seed_claim_that_lost_its_lease_unstarted_is_requeued_uncharged(store: Store) -> None:
    (jid,) = store.enqueue_jobs([new_job(max_retries=0)])
    store.claim_jobs(QUEUE, "caller", 1, lease=0.1, started=False)  # as claim_job does
    wait_until(lambda: store.rescue_expired_leases(), what="lease expiry")
    record = record_of(store, jid)
    assert (record.status, record.attempt - record.redrive_attempt) == (JobStatus.ENQUEUED, 0)


def test_a_rescued_attempt_of_unknown_state_is_charged(store: Store) -> None:
    (jid,) = store.enqueue_jobs([new_job(max_retries=1)])
    store.claim_jobs(QUEUE, "w", 1, lease=0.1)  # a runtime claim, never renewed
    wait_until(lambda: store.rescue_expired_leases(), what="lease expiry")
    record = record_of(store, jid)
    assert (record.status, record.attempt, record.redrive_attempt) == (JobStatus.ENQUEUED, 1, 0)
    assert record.last_error is not None and record.last_error["error_type"] == "lease_expired"


# -- cancel outcomes -------------------------------------------------------------------------


def test_cancel_reports_each_of_its_three_outcomes(store: Store) -> None:
    running, done, waiting = store.enqueue_jobs(
        [new_job(1, priority=2), new_job(2, priority=1), new_job(3)]
    )
    claimed = {r.jid: r for r in store.claim_jobs(QUEUE, "w", 2)}
    assert sorted(claimed) == sorted([running, done])
    assert store.complete_jobs([claimed[done].completion]) == [done]
    unknown = uuid4()
    outcome = store.cancel_jobs([waiting, running, done, unknown])
    # Absent from the result: not found, or already finished.
    assert outcome == {waiting: "cancelled", running: "requested"}
    assert record_of(store, waiting).status is JobStatus.DEAD
    assert record_of(store, running).cancel_requested_at is not None
    assert store.cancel_jobs([waiting]) == {}  # dead already: nothing to cancel
    assert store.cancel_jobs([running]) == {running: "requested"}  # asking twice is harmless


# -- a cancel racing a claim, a release or a finish (PostgreSQL, two real connections) -------


def _waiting_for_a_row_lock(observer: psycopg.Connection) -> bool:
    row = observer.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid()"
    ).fetchone()
    return row is not None and row[0] > 0


def _cancel_during(
    store: Store, database_url: str, jid: UUID, statement: str, params: dict[str, object]
) -> dict[UUID, str]:
    """Run `statement` in an open transaction of its own connection, start cancel_jobs([jid])
    in a thread, wait until the cancel waits for the row lock `statement` holds, then commit:
    the cancel decides after the other transaction, on the row as it committed it."""
    dsn = libpq_url(database_url)
    outcome: dict[UUID, str] = {}
    errors: list[BaseException] = []

    def cancel() -> None:
        try:
            outcome.update(store.cancel_jobs([jid]))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    with psycopg.connect(dsn) as other, psycopg.connect(dsn, autocommit=True) as observer:
        other.execute(Queries("joobq")[statement], params)  # the row stays locked until commit
        thread = threading.Thread(target=cancel)
        thread.start()
        try:
            wait_until(
                lambda: _waiting_for_a_row_lock(observer),
                what=f"the cancel to wait for the row lock of {statement}",
            )
        finally:
            other.commit()
            thread.join(10)
    assert not thread.is_alive() and not errors, errors
    return outcome


def test_a_cancel_that_waits_for_a_claim_is_requested_of_the_claimed_job(
    pg_store: Store, database_url: str
) -> None:
    (jid,) = pg_store.enqueue_jobs([new_job()])
    claim = {"queue": QUEUE, "worker_id": "w", "limit": 1, "lease_s": 60.0, "started": None}
    outcome = _cancel_during(pg_store, database_url, jid, "claim_jobs", claim)
    assert outcome == {jid: "requested"}
    record = record_of(pg_store, jid)
    assert record.status is JobStatus.RUNNING and record.cancel_requested_at is not None
    assert pg_store.cancel_requested("w", [jid]) == {jid}  # the worker sees the flag


def test_a_cancel_that_waits_for_a_release_cancels_the_released_job(
    pg_store: Store, database_url: str
) -> None:
    (jid,) = pg_store.enqueue_jobs([new_job()])
    pg_store.claim_jobs(QUEUE, "w", 1)
    release = {
        "worker_id": "w",
        "jids": [jid],
        "keep": None,
        "queue": None,
        "limit": None,
        "dead_ttl_s": 60.0,
        "shard": 0,
        "notify": False,
        "channel": "joobq_jobs",
    }
    outcome = _cancel_during(pg_store, database_url, jid, "release_jobs", release)
    assert outcome == {jid: "cancelled"}
    record = record_of(pg_store, jid)
    assert (record.status, record.dead_reason) == (JobStatus.DEAD, "cancelled")


def test_a_cancel_that_waits_for_a_completion_finds_nothing_to_cancel(
    pg_store: Store, database_url: str
) -> None:
    (jid,) = pg_store.enqueue_jobs([new_job()])
    (claimed,) = pg_store.claim_jobs(QUEUE, "w", 1)
    finish = {"jid": [jid], "attempt": [claimed.attempt], "worker_id": ["w"], "shard": 0}
    outcome = _cancel_during(pg_store, database_url, jid, "complete_jobs_delete", finish)
    assert outcome == {}  # already finished
    assert pg_store.get_job(jid) is None


def test_a_failed_run_with_a_pending_cancel_is_not_retried(store: Store) -> None:
    (jid,) = store.enqueue_jobs([new_job(max_retries=5)])
    (claimed,) = store.claim_jobs(QUEUE, "w", 1)
    assert store.cancel_jobs([jid]) == {jid: "requested"}
    # The job ignored the request and failed: a retry would run the cancelled job again.
    failure = Failure(jid, claimed.attempt, "w", {"message": "boom"}, retry_in=0)
    assert store.fail_jobs([failure]) == {jid: JobStatus.DEAD}
    record = record_of(store, jid)
    assert (record.dead_reason, record.cancel_requested_at) == ("cancelled", None)
    assert store.claim_jobs(QUEUE, "w", 1) == []
