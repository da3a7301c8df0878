"""Store.hand_back_jobs, against PostgresStore and MemoryStore (issue 13, defect 12): a claimed
job its worker cannot run goes back uncharged, due again after a growing backoff, and goes
dead with a clear reason only once it has been unrunnable for the grace."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from joobq_sql import Failure, JobStatus, MemoryStore, NewJob, Store
from joobq_sql.store.unrunnable import HandBack, duration_text, unrunnable_dead_reason
from tests.helpers import wait_until

QUEUE = "hb"
REASON = "no Job class registers job_type 'HandBackNew'"


STORES = {"postgres": "pg_store", "postgres15": "pg15_store", "memory": None}


@pytest.fixture(params=list(STORES))
def store(request: pytest.FixtureRequest) -> Store:
    fixture = STORES[request.param]
    return MemoryStore() if fixture is None else request.getfixturevalue(fixture)


def enqueue(store: Store, **overrides: object) -> UUID:
    values: dict[str, object] = {
        "jid": uuid4(),
        "queue": QUEUE,
        "job_type": "HandBackNew",
        "args": {"n": 1},
        "max_retries": 0,
    }
    values.update(overrides)
    return store.enqueue_jobs([NewJob(**values)])[0]  # type: ignore[arg-type]


def claim_one(store: Store, worker: str = "w") -> HandBack:
    (record,) = wait_until(lambda: store.claim_jobs(QUEUE, worker, 1), what="the job due")
    return HandBack(
        record.jid,
        record.attempt,
        worker,
        record.job_type,
        REASON,
        {"error_type": "unrunnable", "message": REASON},
    )


def record_of(store: Store, jid: UUID):
    record = store.get_job(jid)
    assert record is not None
    return record


def test_a_hand_back_is_uncharged_and_due_after_a_backoff(store: Store) -> None:
    jid = enqueue(store)
    hand_back = claim_one(store)
    assert store.hand_back_jobs([hand_back], grace=3600) == {jid: JobStatus.SCHEDULED}
    record = record_of(store, jid)
    assert (record.attempt, record.redrive_attempt) == (1, 1)  # the attempt never goes down
    assert record.worker_id is None and record.lease_expires_at is None
    assert record.started is None and record.dead_reason is None
    now = store.now()
    assert now < record.run_at <= now + timedelta(seconds=1.5)  # the first backoff: 1 s
    assert record.unrunnable_since is not None and record.unrunnable_since <= now
    assert record.last_error["message"] == REASON and len(record.errors) == 1
    assert store.claim_jobs(QUEUE, "w", 1) == []


def test_a_stale_hand_back_changes_nothing(store: Store) -> None:
    jid = enqueue(store)
    hand_back = claim_one(store)
    stale = HandBack(jid, hand_back.attempt + 1, "w", "HandBackNew", REASON, {})
    other = HandBack(jid, hand_back.attempt, "someone-else", "HandBackNew", REASON, {})
    assert store.hand_back_jobs([stale, other]) == {}
    assert record_of(store, jid).status is JobStatus.RUNNING


def test_a_spell_of_hand_backs_goes_dead_after_the_grace_with_a_clear_reason(
    store: Store,
) -> None:
    jid = enqueue(store)
    store.hand_back_jobs([claim_one(store)], grace=0.2)
    first = record_of(store, jid)
    # The wait never runs past the end of the grace, so the job is due again by then.
    assert first.run_at <= first.unrunnable_since + timedelta(seconds=0.2)
    assert store.hand_back_jobs([claim_one(store)], grace=0.2) == {jid: JobStatus.DEAD}
    record = record_of(store, jid)
    assert record.dead_reason == f"unrunnable for longer than 0.2s: {REASON}"
    assert (record.attempt, record.redrive_attempt) == (2, 2)  # no run was charged
    assert record.unrunnable_since == first.unrunnable_since  # one spell
    assert len(record.errors) == 2  # the spell's first and last hand-backs
    assert record.dead_expires_at is not None and record.finished_at is not None
    assert store.queue_stats()[QUEUE].totals["dead"] == 1


def test_within_a_spell_the_history_is_not_flooded(store: Store) -> None:
    jid = enqueue(store)
    store.hand_back_jobs([claim_one(store)], grace=3600)
    store.retry_jobs([jid])  # due now: the next claim comes at once
    store.hand_back_jobs([claim_one(store)], grace=3600)
    record = record_of(store, jid)
    assert record.status is JobStatus.SCHEDULED and len(record.errors) == 1
    assert (record.attempt, record.redrive_attempt) == (2, 2)


def test_no_grace_means_dead_at_once(store: Store) -> None:
    jid = enqueue(store)
    assert store.hand_back_jobs([claim_one(store)], grace=0) == {jid: JobStatus.DEAD}
    assert record_of(store, jid).dead_reason == f"unrunnable: {REASON}"


def test_a_hand_back_with_a_pending_cancel_makes_the_job_dead_cancelled(store: Store) -> None:
    jid = enqueue(store)
    hand_back = claim_one(store)
    assert store.cancel_jobs([jid]) == {jid: "requested"}
    assert store.hand_back_jobs([hand_back]) == {jid: JobStatus.DEAD}
    assert record_of(store, jid).dead_reason == "cancelled"


def test_a_job_with_charged_runs_goes_back_retrying_and_a_failed_run_ends_the_spell(
    store: Store,
) -> None:
    jid = enqueue(store, max_retries=3)
    store.hand_back_jobs([claim_one(store)], grace=3600)
    first = record_of(store, jid).unrunnable_since
    store.retry_jobs([jid])
    (record,) = store.claim_jobs(QUEUE, "w", 1)  # a worker that knows the type runs it
    store.fail_jobs([Failure(jid, record.attempt, "w", {"message": "boom"}, retry_in=0.0)])
    assert store.hand_back_jobs([claim_one(store)], grace=3600) == {jid: JobStatus.RETRYING}
    record = record_of(store, jid)
    assert record.attempt - record.redrive_attempt == 1  # only the real run was charged
    assert record.unrunnable_since is not None and record.unrunnable_since > first


def test_a_re_drive_of_a_job_that_died_unrunnable_gives_it_a_fresh_grace(store: Store) -> None:
    jid = enqueue(store)
    store.hand_back_jobs([claim_one(store)], grace=0)
    assert store.retry_jobs([jid]) == [jid]
    assert record_of(store, jid).unrunnable_since is None
    assert store.hand_back_jobs([claim_one(store)], grace=3600) == {jid: JobStatus.SCHEDULED}


def test_bad_arguments_are_refused_naming_them(store: Store) -> None:
    with pytest.raises(TypeError, match="HandBack"):
        store.hand_back_jobs(["not a hand-back"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="grace"):
        store.hand_back_jobs([], grace=-1)
    assert store.hand_back_jobs([]) == {}


def test_reasons_name_the_grace_as_people_write_it() -> None:
    assert [duration_text(s) for s in (3600, 5400, 0.3, 90, 86400, 45)] == [
        "1h",
        "1h30m",
        "0.3s",
        "1m30s",
        "1d",
        "45s",
    ]
    assert unrunnable_dead_reason("x", 3600) == "unrunnable for longer than 1h: x"
    assert unrunnable_dead_reason("x", 0) == "unrunnable: x"
