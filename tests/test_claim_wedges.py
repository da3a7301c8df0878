"""One row never fails every claim of its queue: a time Python cannot hold (before year 1,
after year 9999, infinite) is refused by the table, and no write path can produce one."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import timedelta
from uuid import UUID, uuid4

import psycopg
import pytest

from joobq_sql import Failure, MemoryStore, NewJob, PostgresStore, Store
from joobq_sql._validation import MAX_DURATION_SECONDS


def new_job(**overrides: object) -> NewJob:
    values: dict[str, object] = {"jid": uuid4(), "queue": "w", "job_type": "WedgeJob", "args": {}}
    values.update(overrides)
    return NewJob(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "assignment",
    [
        "run_at = '0500-01-01 BC'",
        "expires_at = '20000-01-01'",
        "created_at = 'infinity'",
        "created_at = '20000-01-01'",
        "finished_at = 'infinity'",
        "dead_expires_at = 'infinity'",
        "cancel_requested_at = '-infinity'",
        "updated_at = '-infinity'",
        "unrunnable_since = '0001-01-01 BC'",
    ],
)
def test_a_time_python_cannot_hold_never_fails_the_claims_of_its_queue(
    pg_store: PostgresStore, pg: psycopg.Connection, assignment: str
) -> None:
    bad, good = new_job(), new_job()
    pg_store.enqueue_jobs([bad, good])
    # The table refuses the value (the row stays as it was), or the claim copes with it.
    with contextlib.suppress(psycopg.errors.CheckViolation):
        pg.execute(f"UPDATE joobq.jobs SET {assignment} WHERE jid = %s", (bad.jid,))
    claimed = pg_store.claim_jobs("w", "worker", 10)
    assert good.jid in [c.jid for c in claimed]
    assert pg_store.get_job(bad.jid) is not None


@pytest.mark.parametrize(
    "assignment",
    ["run_at = '0001-01-01 00:00:00+00'", "expires_at = '9999-12-31 23:59:59.999999+00'"],
)
def test_the_first_and_last_instants_python_holds_are_stored_and_claimed(
    pg_store: PostgresStore, pg: psycopg.Connection, assignment: str
) -> None:
    job = new_job()
    pg_store.enqueue_jobs([job])
    pg.execute(f"UPDATE joobq.jobs SET {assignment} WHERE jid = %s", (job.jid,))
    assert [c.jid for c in pg_store.claim_jobs("w", "worker", 10)] == [job.jid]


@pytest.mark.parametrize("field", ["delay", "expires_in"])
def test_a_new_job_due_or_expiring_past_the_longest_duration_is_refused(field: str) -> None:
    with pytest.raises(
        ValueError, match=rf"{field} .* at most {re.escape(f'{MAX_DURATION_SECONDS:g}')}"
    ):
        new_job(**{field: MAX_DURATION_SECONDS * 2})
    new_job(**{field: MAX_DURATION_SECONDS})


@pytest.fixture(params=["postgres", "memory"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "postgres":
        return request.getfixturevalue("pg_store")
    return MemoryStore()


def test_a_schedule_past_the_longest_delay_is_refused_and_nothing_is_written(
    store: Store,
) -> None:
    jid = uuid4()
    doc = json.dumps({"jid": str(jid), "job_type": "WedgeJob", "queue": "w", "args": {}})
    with pytest.raises(ValueError, match="delay"):
        store.schedule(doc, int(MAX_DURATION_SECONDS * 2000))
    assert store.get_job(jid) is None


def test_a_retry_further_than_the_longest_delay_is_due_at_that_delay(store: Store) -> None:
    jid = store.enqueue_jobs([new_job()])[0]
    [claimed] = store.claim_jobs("w", "worker", 1)
    failure = Failure(jid, claimed.attempt, "worker", {"message": "later"}, retry_in=1e15)
    assert failure.retry_in == MAX_DURATION_SECONDS
    store.fail_jobs([failure])
    record = store.get_job(UUID(str(jid)))
    assert record is not None
    assert record.run_at - store.now() > timedelta(seconds=MAX_DURATION_SECONDS - 3600)
