"""The attempt count is bounded where it is written, far below the table's CHECK, so that no
row can make a claim violate it: one row must never fail every claim of its queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from uuid import UUID, uuid4

import psycopg
import pytest

from joobq_sql import JobStatus, MemoryStore, NewJob, PostgresStore, Store
from joobq_sql._validation import MAX_ATTEMPT

#: The table's CHECK: attempt < 1,000,000,000 (migration 0003).
CHECK_BOUND = 1_000_000_000


@pytest.fixture(params=["postgres", "memory"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "postgres":
        return request.getfixturevalue("pg_store")
    return MemoryStore()


def document(attempt: object, **fields: object) -> str:
    values = {"jid": str(uuid4()), "job_type": "BoundJob", "queue": "b", "args": {}}
    return json.dumps({**values, "attempt": attempt, **fields})


SEED_WRITES: dict[str, Callable[[Store, str], None]] = {
    "schedule": lambda store, doc: store.schedule(doc, 0),
    "schedule_job": lambda store, doc: store.schedule_job(doc, 0),
    "mark_as_dead": lambda store, doc: store.mark_as_dead(doc, 4_102_444_800_000),
}


def test_the_write_bound_leaves_room_for_many_claims() -> None:
    assert MAX_ATTEMPT * 10 <= CHECK_BOUND


@pytest.mark.parametrize("write", SEED_WRITES.values(), ids=SEED_WRITES.keys())
@pytest.mark.parametrize("attempt", [CHECK_BOUND - 1, MAX_ATTEMPT + 1, 2**40])
def test_a_document_with_an_attempt_past_the_bound_is_refused_and_nothing_is_written(
    store: Store, write: Callable[[Store, str], None], attempt: int
) -> None:
    doc = document(attempt)
    with pytest.raises(ValueError, match=rf"job\['attempt'\] {attempt}.*at most {MAX_ATTEMPT}"):
        write(store, doc)
    assert store.get_job(UUID(json.loads(doc)["jid"])) is None


@pytest.mark.parametrize("write", SEED_WRITES.values(), ids=SEED_WRITES.keys())
def test_a_document_with_max_retries_past_the_bound_is_refused(
    store: Store, write: Callable[[Store, str], None]
) -> None:
    doc = document(0, max_retries=2**31)
    with pytest.raises(ValueError, match=rf"job\['max_retries'\] {2**31}.*at most"):
        write(store, doc)
    assert store.get_job(UUID(json.loads(doc)["jid"])) is None


def test_a_document_at_the_bound_is_stored_and_its_job_claimed(store: Store) -> None:
    doc = document(MAX_ATTEMPT)
    store.schedule_job(doc, 0)
    [claimed] = store.claim_jobs("b", "w", 10)
    assert claimed.attempt == MAX_ATTEMPT + 1


def test_a_row_at_the_highest_attempt_the_writes_allow_is_claimed_with_its_queue(
    pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    jobs = [NewJob(jid=uuid4(), queue="b", job_type="BoundJob", args={}) for _ in range(3)]
    pg_store.enqueue_jobs(jobs)
    pg.execute("UPDATE joobq.jobs SET attempt = %s WHERE jid = %s", (MAX_ATTEMPT, jobs[1].jid))
    claimed = pg_store.claim_jobs("b", "w", 10)
    assert [c.jid for c in claimed] == [j.jid for j in jobs]
    assert [c.attempt for c in claimed] == [1, MAX_ATTEMPT + 1, 1]


@pytest.mark.parametrize("server", ["postgres", "postgres15"])
def test_a_row_edited_to_the_checks_edge_is_skipped_and_its_queue_claims_on(
    server: str, request: pytest.FixtureRequest
) -> None:
    """A row no write path makes (attempt 999,999,999, set by hand): its claim would break the
    CHECK and fail the whole statement, so the claims of both server versions leave it be."""
    store: PostgresStore = request.getfixturevalue(
        "pg_store" if server == "postgres" else "pg15_store"
    )
    jobs = [NewJob(jid=uuid4(), queue="b", job_type="BoundJob", args={}) for _ in range(3)]
    store.enqueue_jobs(jobs)
    with store.engine.connect() as conn:
        conn.exec_driver_sql(
            "UPDATE joobq.jobs SET attempt = %(a)s WHERE jid = %(j)s",
            {"a": CHECK_BOUND - 1, "j": jobs[1].jid},
        )
        conn.commit()
    claimed = store.claim_jobs("b", "w", 10)
    assert [c.jid for c in claimed] == [jobs[0].jid, jobs[2].jid]
    assert store.get_job(jobs[1].jid).status is JobStatus.ENQUEUED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "call",
    [
        lambda store, doc: store.mark_as_failed(doc, {"message": "boom"}),
        lambda store, doc: store.mark_job_completed(doc, "b"),
        lambda store, doc: store.cleanup_job(doc, "b"),
    ],
    ids=["mark_as_failed", "mark_job_completed", "cleanup_job"],
)
def test_a_fence_with_an_attempt_no_row_can_have_is_refused_with_a_clear_error(
    store: Store, call: Callable[[Store, str], None]
) -> None:
    jid = store.enqueue_jobs([NewJob(jid=uuid4(), queue="b", job_type="BoundJob", args={})])[0]
    [claimed] = store.claim_jobs("b", "w", 1)
    doc = document(2**40, jid=str(jid), worker_id="w")
    with pytest.raises(ValueError, match=rf"job\[.attempt.\] {2**40}"):
        call(store, doc)
    assert store.get_job(jid).status is JobStatus.RUNNING
    assert claimed.attempt == 1


def test_a_new_job_with_max_retries_past_the_bound_is_refused() -> None:
    with pytest.raises(ValueError, match=rf"max_retries {2**31} is too high.*{MAX_ATTEMPT}"):
        NewJob(jid=uuid4(), queue="b", job_type="BoundJob", args={}, max_retries=2**31)
