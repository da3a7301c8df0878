"""The Store contract, run against every store: PostgresStore (real PostgreSQL) and MemoryStore.

Each test states one behaviour of one method. Waiting for time to pass (leases, delays) polls a
condition with a deadline; it never sleeps a fixed time.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from joobq_sql import Completion, Failure, Job, JobStatus, MemoryStore, NewJob, Store
from joobq_sql.errors import DuplicateJobError
from joobq_sql.store.records import MAX_ERROR_HISTORY
from tests.helpers import wait_until


class ContractJob(Job):
    queue = "contract"
    n: int
    note: str = ""

    def perform(self) -> None:
        pass


class ContractMailJob(Job):
    queue = "mail"
    to: str

    def perform(self) -> None:
        pass


#: PostgresStore on the main test server (PostgreSQL 18) and on PostgreSQL 15, the oldest
#: supported version (skipped where it is not installed), and the in-process MemoryStore.
STORES = {"postgres": "pg_store", "postgres15": "pg15_store", "memory": None}


@pytest.fixture(params=list(STORES))
def store(request: pytest.FixtureRequest) -> Store:
    fixture = STORES[request.param]
    return MemoryStore() if fixture is None else request.getfixturevalue(fixture)


def new_job(n: int = 0, **overrides) -> NewJob:
    values = {"jid": uuid4(), "queue": "contract", "job_type": "ContractJob", "args": {"n": n}}
    values.update(overrides)
    return NewJob(**values)


def doc(job_json: str) -> dict:
    return json.loads(job_json)


def status_of(store: Store, jid: str | UUID) -> JobStatus | None:
    record = store.get_job(jid if isinstance(jid, UUID) else UUID(jid))
    return None if record is None else record.status


def jids_of(job_jsons: list[str]) -> list[str]:
    return [doc(j)["jid"] for j in job_jsons]


# -- enqueue / enqueue_batch ------------------------------------------------------------------


def test_enqueue_returns_the_jid_of_a_waiting_job(store: Store) -> None:
    job = ContractJob(n=1)
    jid = store.enqueue(job)
    assert jid == str(job.jid)
    record = store.get_job(job.jid)
    assert record.status is JobStatus.ENQUEUED
    assert record.args == {"n": 1, "note": ""}
    assert record.attempt == 0 and record.max_retries == 3
    assert record.expires_at is not None


def test_enqueue_batch_stores_every_job_across_chunks(store: Store) -> None:
    jobs = [ContractJob(n=i) for i in range(25)]
    store.enqueue_batch(jobs, 10)
    assert store.queue_size("contract") == 25
    listed = [doc(j)["args"]["n"] for j in store.list_jobs("contract", 1, 100)]
    assert listed == list(range(25))


def test_enqueue_batch_with_a_duplicate_jid_stores_nothing(store: Store) -> None:
    first, second = ContractJob(n=1), ContractJob(n=2)
    second.jid = first.jid
    with pytest.raises(DuplicateJobError, match=str(first.jid)):
        store.enqueue_batch([ContractJob(n=0), first, second], 2)
    assert store.queue_size("contract") == 0


def test_enqueue_batch_refuses_a_batch_size_below_one(store: Store) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        store.enqueue_batch([ContractJob(n=1)], 0)
    assert store.queue_size("contract") == 0


def test_enqueue_jobs_of_nothing_is_a_no_op(store: Store) -> None:
    assert store.enqueue_jobs([]) == []


# -- claiming --------------------------------------------------------------------------------


def test_dequeue_on_an_empty_queue_returns_none(store: Store) -> None:
    assert store.dequeue("contract", ContractJob) is None


def test_dequeue_claims_the_next_job(store: Store) -> None:
    jid = store.enqueue(ContractJob(n=7))
    claimed = doc(store.dequeue("contract", ContractJob))
    assert claimed["jid"] == jid
    assert claimed["status"] == "running"
    assert claimed["attempt"] == 1
    assert store.dequeue("contract", ContractJob) is None


def test_claim_job_records_the_worker_and_a_lease(store: Store) -> None:
    jid = store.enqueue(ContractJob(n=1))
    claimed = doc(store.claim_job("contract", "worker-a", ContractJob))
    assert claimed["jid"] == jid and claimed["worker_id"] == "worker-a"
    record = store.get_job(UUID(jid))
    assert record.lease_expires_at > store.now()


def test_claim_job_on_an_empty_queue_returns_none(store: Store) -> None:
    assert store.claim_job("contract", "worker-a", ContractJob) is None


def test_claim_jobs_batch_takes_at_most_the_batch(store: Store) -> None:
    store.enqueue_batch([ContractJob(n=i) for i in range(5)], 100)
    assert len(store.claim_jobs_batch("contract", "w", ContractJob, 3)) == 3
    assert len(store.claim_jobs_batch("contract", "w", ContractJob, 3)) == 2
    assert store.claim_jobs_batch("contract", "w", ContractJob, 3) == []


def test_claims_take_higher_priority_first_then_fifo(store: Store) -> None:
    store.enqueue_jobs(
        [
            new_job(1, priority=0),
            new_job(2, priority=5),
            new_job(3, priority=0),
            new_job(4, priority=5),
            new_job(5, priority=-1),
        ]
    )
    claimed = store.claim_jobs_batch("contract", "w", ContractJob, 10)
    assert [doc(j)["args"]["n"] for j in claimed] == [2, 4, 1, 3, 5]


def test_claims_are_fifo_across_separate_enqueues(store: Store) -> None:
    for i in range(10):
        store.enqueue(ContractJob(n=i))
    order = [doc(store.dequeue("contract", ContractJob))["args"]["n"] for _ in range(10)]
    assert order == list(range(10))


def test_claims_only_take_from_their_own_queue(store: Store) -> None:
    store.enqueue(ContractMailJob(to="a@example.com"))
    assert store.dequeue("contract", ContractJob) is None
    assert doc(store.dequeue("mail", ContractMailJob))["args"] == {"to": "a@example.com"}


def test_a_delayed_job_is_invisible_until_due(store: Store) -> None:
    store.enqueue_jobs([new_job(1, delay=0.4)])
    assert store.claim_jobs("contract", "w", 10) == []
    assert store.queue_size("contract") == 0
    claimed = wait_until(lambda: store.claim_jobs("contract", "w", 10), what="delayed job due")
    assert claimed[0].args == {"n": 1}


def test_an_expired_job_is_never_claimed(store: Store) -> None:
    past = store.now() - timedelta(seconds=1)
    store.enqueue_jobs([new_job(1, expires_at=past)])
    assert store.claim_jobs("contract", "w", 10) == []


def test_a_claimed_row_of_unknown_type_is_handed_back_not_lost(store: Store) -> None:
    # A job of a type only a newer deploy knows: handed back for a worker that knows it,
    # uncharged, due again after a backoff (issue 13, defect 12), not dead at once.
    jid = store.enqueue_jobs([new_job(1, job_type="NoSuchJobType")])[0]
    good = store.enqueue(ContractJob(n=2))
    claimed = store.claim_jobs_batch("contract", "w", ContractJob, 10)
    assert jids_of(claimed) == [good]
    record = store.get_job(jid)
    assert record.status is JobStatus.SCHEDULED and record.worker_id is None
    assert (record.attempt, record.redrive_attempt) == (1, 1)
    assert record.run_at > store.now() and record.unrunnable_since is not None
    assert record.last_error["error_type"] == "unrunnable"
    assert "NoSuchJobType" in record.last_error["message"]
    assert store.claim_jobs_batch("contract", "w", ContractJob, 10) == []  # not due yet


def test_a_claimed_row_with_malformed_args_is_handed_back_with_the_field_named(
    store: Store,
) -> None:
    jid = store.enqueue_jobs([new_job(args={"n": "not a number"})])[0]
    assert store.claim_jobs_batch("contract", "w", ContractJob, 10) == []
    record = store.get_job(jid)
    assert record.status is JobStatus.SCHEDULED and record.redrive_attempt == 1
    message = record.last_error["message"]
    assert "n" in message and "int" in message


# -- releasing claims ------------------------------------------------------------------------


def test_release_job_claim_puts_one_claimed_job_back_unchanged(store: Store) -> None:
    jid = store.enqueue(ContractJob(n=1))
    store.claim_job("contract", "w", ContractJob)
    store.release_job_claim("contract", "w")
    record = store.get_job(UUID(jid))
    assert record.status is JobStatus.ENQUEUED
    assert record.worker_id is None and record.lease_expires_at is None
    # Unchanged for its retry budget; the attempt, the fencing token, never goes back down.
    assert (record.attempt, record.redrive_attempt, record.retries_left) == (1, 1, 3)
    assert doc(store.claim_job("contract", "w2", ContractJob))["jid"] == jid


def test_release_job_claims_batch_releases_at_most_the_count(store: Store) -> None:
    store.enqueue_batch([ContractJob(n=i) for i in range(4)], 100)
    store.claim_jobs_batch("contract", "w", ContractJob, 4)
    store.release_job_claims_batch("contract", "w", 3)
    assert store.processing_queue_size("contract") == 1
    assert store.queue_size("contract") == 3
    store.release_job_claims_batch("contract", "w", 0)
    assert store.processing_queue_size("contract") == 1


def test_release_only_touches_the_named_workers_claims(store: Store) -> None:
    store.enqueue_batch([ContractJob(n=i) for i in range(2)], 100)
    store.claim_job("contract", "w1", ContractJob)
    store.claim_job("contract", "w2", ContractJob)
    store.release_job_claims_batch("contract", "w1", 10)
    assert store.processing_queue_size("contract") == 1


def test_releasing_a_retried_job_keeps_it_retrying(store: Store) -> None:
    jid = store.enqueue_jobs([new_job(1)])[0]
    first = store.claim_jobs("contract", "w", 1)[0]
    store.fail_jobs([Failure(jid, first.attempt, "w", {"message": "x"}, retry_in=0)])
    store.claim_jobs("contract", "w", 1)
    assert store.release_jobs("w", [jid]) == [jid]
    record = store.get_job(jid)
    assert record.status is JobStatus.RETRYING and record.attempt == 2
    assert record.retries_left == 2  # the released claim spent none of them


# -- completion ------------------------------------------------------------------------------


def test_mark_job_completed_removes_the_job(store: Store) -> None:
    store.enqueue(ContractJob(n=1))
    claimed = store.claim_job("contract", "w", ContractJob)
    store.mark_job_completed(claimed, "contract")
    assert store.get_job(UUID(doc(claimed)["jid"])) is None
    assert store.queue_stats()["contract"].totals["completed"] == 1


def test_completion_with_retention_keeps_a_completed_row(store: Store) -> None:
    kept = (
        MemoryStore(keep_completed=3600)
        if isinstance(store, MemoryStore)
        else type(store)(store.engine, keep_completed=3600)
    )
    kept.enqueue(ContractJob(n=1))
    claimed = kept.claim_job("contract", "w", ContractJob)
    kept.mark_job_completed(claimed, "contract")
    record = kept.get_job(UUID(doc(claimed)["jid"]))
    assert record.status is JobStatus.COMPLETED and record.finished_at is not None
    assert kept.prune_completed() == 0  # retention not over yet


def test_a_late_completion_of_an_old_attempt_changes_nothing(store: Store) -> None:
    store.enqueue(ContractJob(n=1))
    first = doc(store.claim_job("contract", "w1", ContractJob))
    jid = UUID(first["jid"])
    store.release_jobs("w1", [jid])
    store.claim_job("contract", "w2", ContractJob)  # the same job, claimed again
    assert store.complete_jobs([Completion(jid, first["attempt"], "w1")]) == []
    assert store.complete_jobs([Completion(jid, 1, "w1")]) == []
    record = store.get_job(jid)
    assert record.status is JobStatus.RUNNING and record.worker_id == "w2"


def test_complete_jobs_finishes_a_whole_batch_at_once(store: Store) -> None:
    store.enqueue_batch([ContractJob(n=i) for i in range(50)], 100)
    claimed = store.claim_jobs("contract", "w", 50)
    done = store.complete_jobs([r.completion for r in claimed])
    assert sorted(done) == sorted(r.jid for r in claimed)
    assert store.processing_queue_size("contract") == 0


def test_completing_a_waiting_job_is_a_no_op(store: Store) -> None:
    jid = store.enqueue_jobs([new_job(1)])[0]
    assert store.complete_jobs([Completion(jid)]) == []
    assert status_of(store, jid) is JobStatus.ENQUEUED


# -- failure, cleanup, retries, dead ----------------------------------------------------------


def test_mark_as_failed_schedules_a_retry_with_the_error_recorded(store: Store) -> None:
    store.enqueue(ContractJob(n=1))
    claimed = store.claim_job("contract", "w", ContractJob)
    store.mark_as_failed(claimed, {"error_class": "ValueError", "message": "bad"})
    record = store.get_job(UUID(doc(claimed)["jid"]))
    assert record.status is JobStatus.RETRYING
    assert record.last_error["message"] == "bad"
    assert [e["message"] for e in record.errors] == ["bad"]
    assert record.run_at > store.now()  # JoobQ's first backoff: 1 s


def test_a_job_out_of_retries_goes_dead_once(store: Store) -> None:
    jid = store.enqueue_jobs([new_job(1, max_retries=1)])[0]
    outcomes = []
    for attempt in (1, 2):
        claimed = wait_until(lambda: store.claim_jobs("contract", "w", 1), what="retry due")
        assert claimed[0].attempt == attempt
        outcomes.append(
            store.fail_jobs([Failure(jid, attempt, "w", {"message": f"fail {attempt}"}, 0.05)])
        )
    assert outcomes == [{jid: JobStatus.RETRYING}, {jid: JobStatus.DEAD}]
    record = store.get_job(jid)
    assert record.dead_reason == "retries exhausted"
    assert record.dead_expires_at > store.now() + timedelta(days=6)
    assert len(record.errors) == 2
    totals = store.queue_stats()["contract"].totals
    assert totals["retried"] == 1 and totals["dead"] == 1


def test_a_failure_without_retry_goes_dead_with_its_reason(store: Store) -> None:
    jid = store.enqueue_jobs([new_job(1)])[0]
    store.claim_jobs("contract", "w", 1)
    result = store.fail_jobs([Failure(jid, 1, "w", {"m": "x"}, None, dead_reason="not worth it")])
    assert result == {jid: JobStatus.DEAD}
    assert store.get_job(jid).dead_reason == "not worth it"


def test_a_stale_failure_report_changes_nothing(store: Store) -> None:
    jid = store.enqueue_jobs([new_job(1)])[0]
    store.claim_jobs("contract", "w", 1)
    assert store.fail_jobs([Failure(jid, 1, "someone-else", {"m": "x"}, 0)]) == {}
    assert store.fail_jobs([Failure(jid, 2, "w", {"m": "x"}, 0)]) == {}
    assert status_of(store, jid) is JobStatus.RUNNING


def test_the_error_history_is_bounded(store: Store) -> None:
    jid = store.enqueue_jobs([new_job(1, max_retries=MAX_ERROR_HISTORY + 5)])[0]
    for attempt in range(1, MAX_ERROR_HISTORY + 4):
        store.claim_jobs("contract", "w", 1)
        store.fail_jobs([Failure(jid, attempt, "w", {"message": f"e{attempt}"}, retry_in=0)])
    errors = store.get_job(jid).errors
    assert len(errors) == MAX_ERROR_HISTORY
    assert errors[-1]["message"] == f"e{MAX_ERROR_HISTORY + 3}"
    assert errors[0]["message"] == "e4"


def test_cleanup_job_retries_a_job_with_runs_left(store: Store) -> None:
    store.enqueue(ContractJob(n=1))
    claimed = store.claim_job("contract", "w", ContractJob)
    store.cleanup_job(claimed, "contract")
    record = store.get_job(UUID(doc(claimed)["jid"]))
    assert record.status is JobStatus.RETRYING
    assert store.verify_job_removed_from_processing(doc(claimed)["jid"], "contract")


def test_cleanup_jobs_batch_sends_jobs_on_their_last_run_to_dead(store: Store) -> None:
    jids = store.enqueue_jobs([new_job(i, max_retries=0) for i in range(3)])
    claimed = store.claim_jobs_batch("contract", "w", ContractJob, 3)
    store.cleanup_jobs_batch(claimed, "contract")
    assert {status_of(store, j) for j in jids} == {JobStatus.DEAD}


def test_mark_as_dead_keeps_the_job_until_its_expiration_then_purges_it(store: Store) -> None:
    keep, drop = ContractJob(n=1), ContractJob(n=2)
    store.enqueue(keep)
    store.enqueue(drop)
    now_ms = int(store.now().timestamp() * 1000)
    store.mark_as_dead(keep, now_ms + 3_600_000)
    store.mark_as_dead(drop, now_ms - 1)
    assert status_of(store, keep.jid) is JobStatus.DEAD
    assert store.purge_dead() == 1
    assert status_of(store, drop.jid) is None
    assert status_of(store, keep.jid) is JobStatus.DEAD


def test_mark_as_dead_inserts_an_unknown_job(store: Store) -> None:
    job = ContractJob(n=1)
    store.mark_as_dead(job, int(store.now().timestamp() * 1000) + 60_000)
    assert status_of(store, job.jid) is JobStatus.DEAD


# -- schedule / schedule_job / fetch_due_jobs --------------------------------------------------


def test_schedule_delays_a_job_relative_to_the_store_clock(store: Store) -> None:
    job = ContractJob(n=1)
    store.schedule(job, 300, "scheduled")
    record = store.get_job(job.jid)
    assert record.status is JobStatus.SCHEDULED
    assert store.claim_jobs("contract", "w", 1) == []
    wait_until(lambda: store.claim_jobs("contract", "w", 1), what="scheduled job due")


def test_schedule_refuses_a_negative_delay(store: Store) -> None:
    job = ContractJob(n=1)
    with pytest.raises(ValueError, match="delay_in_ms"):
        store.schedule(job, -1, "scheduled")
    assert store.get_job(job.jid) is None


def test_schedule_job_uses_an_absolute_time(store: Store) -> None:
    job = ContractJob(n=1)
    at = store.now() + timedelta(hours=1)
    store.schedule_job(job.to_json(), int(at.timestamp() * 1000))
    record = store.get_job(job.jid)
    assert record.status is JobStatus.SCHEDULED
    assert abs((record.run_at - at).total_seconds()) < 0.01


def test_fetch_due_jobs_moves_due_jobs_to_the_queue(store: Store) -> None:
    job, later = ContractJob(n=1), ContractJob(n=2)
    store.schedule_job(job.to_json(), 0)
    store.schedule(later, 3_600_000, "scheduled")
    fetched = store.fetch_due_jobs(datetime.now(UTC), "scheduled", 10, True)
    assert jids_of(fetched) == [str(job.jid)]
    assert status_of(store, job.jid) is JobStatus.ENQUEUED
    assert status_of(store, later.jid) is JobStatus.SCHEDULED


def test_fetch_due_jobs_without_remove_changes_nothing(store: Store) -> None:
    job = ContractJob(n=1)
    store.schedule_job(job.to_json(), 0)
    assert jids_of(store.fetch_due_jobs(datetime.now(UTC), "scheduled", 10, False)) == [
        str(job.jid)
    ]
    assert status_of(store, job.jid) is JobStatus.SCHEDULED


def test_fetch_due_jobs_never_trusts_a_clock_ahead_of_the_store(store: Store) -> None:
    job = ContractJob(n=1)
    store.schedule(job, 60_000, "scheduled")
    ahead = datetime.now(UTC) + timedelta(minutes=5)
    assert store.fetch_due_jobs(ahead, "scheduled", 10, True) == []


def test_fetch_due_jobs_in_pages_yields_every_due_job_exactly_once(store: Store) -> None:
    jobs = [new_job(i, delay=0.001) for i in range(5000)]
    store.enqueue_jobs(jobs, batch_size=1000)
    wait_until(lambda: store.count_jobs("contract", JobStatus.SCHEDULED, due_only=True) == 5000)
    seen: Counter[str] = Counter()
    while batch := store.fetch_due_jobs(datetime.now(UTC), "scheduled", 50, True):
        assert len(batch) <= 50
        seen.update(jids_of(batch))
    assert len(seen) == 5000 and set(seen.values()) == {1}
    assert store.queue_size("contract") == 5000


def test_concurrent_fetch_due_jobs_never_share_a_job(store: Store) -> None:
    store.enqueue_jobs([new_job(i, run_at=datetime(2000, 1, 1, tzinfo=UTC)) for i in range(2000)])
    seen: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        while batch := store.fetch_due_jobs(datetime.now(UTC), "scheduled", 50, True):
            with lock:
                seen.extend(jids_of(batch))

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 2000 and len(set(seen)) == 2000


def test_fetch_due_jobs_refuses_a_naive_time(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.fetch_due_jobs(datetime.now(), "scheduled", 10, True)


# -- leases ----------------------------------------------------------------------------------


def test_move_job_back_to_queue_is_false_when_no_lease_expired(store: Store) -> None:
    store.enqueue(ContractJob(n=1))
    store.claim_job("contract", "w", ContractJob)
    assert store.move_job_back_to_queue("contract") is False
    assert store.move_job_back_to_queue("empty-queue") is False


def test_lease_rescue_requeues_only_expired_leases(store: Store) -> None:
    short, live = store.enqueue_jobs([new_job(1), new_job(2)])
    store.claim_jobs("contract", "crashed", 1, lease=0.2)
    store.claim_jobs("contract", "alive", 1, lease=3600)
    wait_until(lambda: store.move_job_back_to_queue("contract"), what="lease expiry")
    rescued = store.get_job(short)
    assert rescued.status is JobStatus.ENQUEUED and rescued.worker_id is None
    assert rescued.last_error["error_type"] == "lease_expired"
    assert store.get_job(live).status is JobStatus.RUNNING
    assert store.get_job(live).worker_id == "alive"
    assert store.queue_stats()["contract"].totals["rescued"] == 1


def test_a_finish_of_a_rescued_attempt_is_fenced_out(store: Store) -> None:
    jid = store.enqueue_jobs([new_job(1)])[0]
    lost = store.claim_jobs("contract", "crashed", 1, lease=0.2)[0]
    wait_until(lambda: store.rescue_expired_leases("contract"), what="lease expiry")
    again = store.claim_jobs("contract", "healthy", 1)[0]
    assert again.attempt == lost.attempt + 1
    assert store.complete_jobs([lost.completion]) == []
    assert store.fail_jobs([Failure(jid, lost.attempt, "crashed", {"m": "late"}, 0)]) == {}
    assert store.get_job(jid).worker_id == "healthy"
    assert store.complete_jobs([again.completion]) == [jid]


def test_a_job_whose_last_run_lost_its_lease_goes_dead(store: Store) -> None:
    jid = store.enqueue_jobs([new_job(1, max_retries=0)])[0]
    store.claim_jobs("contract", "crashed", 1, lease=0.1)
    wait_until(lambda: store.rescue_expired_leases(), what="lease expiry")
    record = store.get_job(jid)
    assert record.status is JobStatus.DEAD
    assert record.dead_reason == "lease expired on the last attempt"


def test_renew_leases_extends_only_the_leases_still_held(store: Store) -> None:
    held, lost = store.enqueue_jobs([new_job(1), new_job(2)])
    first = store.claim_jobs("contract", "w", 2, lease=5)
    before = store.get_job(held).lease_expires_at
    store.release_jobs("w", [lost])
    assert store.renew_leases("w", [r.jid for r in first], lease=600) == {held}
    assert store.get_job(held).lease_expires_at > before
    assert store.renew_leases("other", [held]) == set()


def test_verify_job_removed_from_processing(store: Store) -> None:
    jid = store.enqueue(ContractJob(n=1))
    assert store.verify_job_removed_from_processing(jid, "contract")
    claimed = store.claim_job("contract", "w", ContractJob)
    assert not store.verify_job_removed_from_processing(jid, "contract")
    assert store.verify_job_removed_from_processing(jid, "other-queue")
    store.mark_job_completed(claimed, "contract")
    assert store.verify_job_removed_from_processing(jid, "contract")
    assert store.verify_job_removed_from_processing(str(uuid4()), "contract")


# -- expiry ----------------------------------------------------------------------------------


def test_the_expiry_sweep_sends_expired_waiting_jobs_to_dead(store: Store) -> None:
    past = store.now() - timedelta(seconds=1)
    expired, fresh = store.enqueue_jobs([new_job(1, expires_at=past), new_job(2)])
    assert store.expire_waiting_jobs() == [expired]
    record = store.get_job(expired)
    assert record.status is JobStatus.DEAD and record.dead_reason == "expired"
    at = past.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert record.last_error == {
        "error_type": "expired",
        "message": f"job expired at {at} before it ran",
    }
    assert status_of(store, fresh) is JobStatus.ENQUEUED
    assert store.queue_stats()["contract"].totals["expired"] == 1


def soon_expiring_job(store: Store) -> tuple[UUID, datetime]:
    """Enqueue a job whose expires_at is a moment away; return its jid and that instant."""
    expires_at = store.now() + timedelta(seconds=0.3)
    return store.enqueue_jobs([new_job(1, expires_at=expires_at)])[0], expires_at


def test_a_job_that_started_and_waits_to_retry_is_not_expired(store: Store) -> None:
    """`expires` bounds the wait before the first start, not the whole life of a job."""
    jid, expires_at = soon_expiring_job(store)
    run = store.claim_jobs("contract", "w", 1)[0]
    store.fail_jobs([Failure(jid, run.attempt, "w", {"message": "boom"}, retry_in=0)])
    wait_until(lambda: store.now() > expires_at, what="the expiry to pass")
    assert store.expire_waiting_jobs() == []
    assert status_of(store, jid) is JobStatus.RETRYING
    retried = store.claim_jobs("contract", "w", 1)
    assert [r.jid for r in retried] == [jid] and retried[0].attempt == 2


def test_a_job_rescued_from_a_lost_run_is_not_expired(store: Store) -> None:
    """A run whose worker vanished may have started: it counts as started."""
    jid, expires_at = soon_expiring_job(store)
    store.claim_jobs("contract", "crashed", 1, lease=0.1)
    wait_until(lambda: store.rescue_expired_leases("contract"), what="lease expiry")
    wait_until(lambda: store.now() > expires_at, what="the expiry to pass")
    assert store.expire_waiting_jobs() == []
    assert [r.jid for r in store.claim_jobs("contract", "w", 1)] == [jid]


def test_a_released_job_that_never_started_still_expires(store: Store) -> None:
    jid, expires_at = soon_expiring_job(store)
    store.claim_jobs("contract", "w", 1)
    assert store.release_jobs("w", [jid]) == [jid]
    wait_until(lambda: store.now() > expires_at, what="the expiry to pass")
    assert store.claim_jobs("contract", "w", 1) == []
    assert store.expire_waiting_jobs() == [jid]
    assert store.get_job(jid).dead_reason == "expired"


# -- sizes, listing, clearing, deleting ---------------------------------------------------------


def test_queue_and_processing_sizes(store: Store) -> None:
    assert store.queue_size("contract") == 0 and store.processing_queue_size("contract") == 0
    store.enqueue_batch([ContractJob(n=i) for i in range(3)], 10)
    store.enqueue_jobs([new_job(9, delay=3600)])
    store.claim_job("contract", "w", ContractJob)
    assert store.queue_size("contract") == 2
    assert store.processing_queue_size("contract") == 1


def test_list_jobs_pages_in_claim_order_and_past_the_end_is_empty(store: Store) -> None:
    store.enqueue_jobs([new_job(i, priority=i % 2) for i in range(7)])
    first = [doc(j)["args"]["n"] for j in store.list_jobs("contract", 1, 3)]
    second = [doc(j)["args"]["n"] for j in store.list_jobs("contract", 2, 3)]
    third = [doc(j)["args"]["n"] for j in store.list_jobs("contract", 3, 3)]
    assert first + second + third == [1, 3, 5, 0, 2, 4, 6]
    assert store.list_jobs("contract", 4, 3) == []
    assert store.list_jobs("unknown-queue") == []


@pytest.mark.parametrize("page_number, page_size", [(0, 10), (-1, 10), (1, 0)])
def test_list_jobs_refuses_pages_below_one(store: Store, page_number: int, page_size: int) -> None:
    with pytest.raises(ValueError, match="page_"):
        store.list_jobs("contract", page_number, page_size)


def test_clear_queue_deletes_waiting_jobs_only(store: Store) -> None:
    store.enqueue_batch([ContractJob(n=i) for i in range(3)], 10)
    store.enqueue(ContractMailJob(to="x@example.com"))
    running = doc(store.claim_job("contract", "w", ContractJob))
    store.clear_queue("contract")
    assert store.queue_size("contract") == 0
    assert status_of(store, running["jid"]) is JobStatus.RUNNING
    assert store.queue_size("mail") == 1


def test_delete_job_removes_it_and_an_unknown_jid_is_fine(store: Store) -> None:
    job = ContractJob(n=1)
    store.enqueue(job)
    store.delete_job(job.to_json())
    assert store.get_job(job.jid) is None
    store.delete_job(job.to_json())
    store.delete_job(ContractJob(n=2))


def test_get_job_of_an_unknown_jid_is_none(store: Store) -> None:
    assert store.get_job(uuid4()) is None


# -- stats -----------------------------------------------------------------------------------


def test_queue_stats_count_each_state(store: Store) -> None:
    store.enqueue_jobs([new_job(i) for i in range(4)] + [new_job(9, delay=3600)])
    claimed = store.claim_jobs("contract", "w", 3)
    store.complete_jobs([claimed[0].completion])
    store.fail_jobs([Failure(claimed[1].jid, 1, "w", {"m": "x"}, retry_in=3600)])
    store.fail_jobs([Failure(claimed[2].jid, 1, "w", {"m": "x"}, retry_in=None)])
    stats = store.queue_stats()["contract"]
    assert (stats.waiting, stats.due_later, stats.running, stats.retrying, stats.dead) == (
        1,
        1,
        0,
        1,
        1,
    )
    assert stats.oldest_waiting_age is not None and stats.oldest_waiting_age >= 0
    assert stats.totals == {"completed": 1, "retried": 1, "dead": 1, "expired": 0, "rescued": 0}
    assert stats.processed == 3


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("queue", ["", "q" * 101, "tab\there", "nul\x00", "bell\x07"])
def test_bad_queue_names_are_refused_and_nothing_is_stored(store: Store, queue: str) -> None:
    with pytest.raises(ValueError, match="queue name"):
        store.enqueue_jobs([new_job(1, queue=queue)])
    with pytest.raises(ValueError, match="queue name"):
        store.queue_size(queue)
    assert store.queue_stats() == {}


def test_a_queue_name_full_of_sql_metacharacters_round_trips(store: Store) -> None:
    queue = "q'; DROP TABLE jobs; --\"$1 %s {schema} \\ é 🚀"
    jid = store.enqueue_jobs([new_job(1, queue=queue)])[0]
    assert store.queue_size(queue) == 1
    assert store.get_job(jid).queue == queue
    assert store.claim_jobs(queue, "w", 1)[0].jid == jid


def test_non_json_args_are_refused_with_the_field_named(store: Store) -> None:
    class ContractOpaqueJob(Job):
        payload: object

    with pytest.raises(TypeError, match="payload"):
        store.enqueue(ContractOpaqueJob(payload={1, 2}))
    with pytest.raises(TypeError, match="payload"):
        store.enqueue(ContractOpaqueJob(payload=float("nan")))
    with pytest.raises(TypeError, match="n"):
        store.enqueue_jobs([new_job(args={"n": object()})])
    assert store.queue_stats() == {}


def test_a_negative_delay_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="delay"):
        store.enqueue_jobs([new_job(1, delay=-5)])
    assert store.queue_stats() == {}


def test_malformed_job_json_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="JSON"):
        store.mark_job_completed("{not json", "contract")
    with pytest.raises(ValueError, match="jid"):
        store.cleanup_job('{"jid": "not-a-uuid"}', "contract")


# -- concurrency -----------------------------------------------------------------------------


def test_eight_threads_claim_two_thousand_jobs_each_exactly_once(store: Store) -> None:
    store.enqueue_jobs([new_job(i) for i in range(2000)], batch_size=500)
    claimed: list[UUID] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(name: str) -> None:
        start.wait()
        while batch := store.claim_jobs("contract", name, 25):
            with lock:
                claimed.extend(r.jid for r in batch)
            store.complete_jobs([r.completion for r in batch])

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 2000
    assert len(set(claimed)) == 2000
    assert store.queue_size("contract") == 0 and store.processing_queue_size("contract") == 0
    assert store.queue_stats()["contract"].totals["completed"] == 2000


def test_a_large_batch_keeps_every_option_of_every_job(store: Store) -> None:
    """Large batches take PostgresStore's COPY path; the rows must be the same as INSERT's."""
    now = store.now()
    jobs = [
        new_job(i, priority=i % 3, delay=3600 if i % 2 else 0, expires_in=60 if i % 5 else None)
        for i in range(300)
    ]
    store.enqueue_jobs(jobs)
    for job in jobs[:20]:
        record = store.get_job(job.jid)
        assert record.status is (JobStatus.SCHEDULED if job.delay else JobStatus.ENQUEUED)
        assert record.priority == job.priority and record.args == job.args
        expected_run = now + timedelta(seconds=job.delay)
        assert abs((record.run_at - expected_run).total_seconds()) < 5
        if job.expires_in is None:
            assert record.expires_at is None
        else:
            assert abs((record.expires_at - now).total_seconds() - 60) < 5
    assert store.queue_size("contract") == 150
    assert [doc(j)["args"]["n"] for j in store.list_jobs("contract", 1, 3)] == [2, 8, 14]


def test_a_large_batch_with_a_duplicate_jid_stores_nothing(store: Store) -> None:
    jobs = [new_job(i) for i in range(300)]
    jobs.append(new_job(300, jid=jobs[7].jid))
    with pytest.raises(DuplicateJobError):
        store.enqueue_jobs(jobs)
    assert store.queue_stats() == {}
