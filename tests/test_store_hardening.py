"""Rows and values that used to wedge a queue or fail late are refused early, or dead-lettered."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from joobq_sql import Job, JobStatus, NewJob, PostgresStore


class HardenedJob(Job):
    n: int = 0

    def perform(self) -> None:
        pass


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({"n": "a\x00b"}, "field 'n'"),
        ({"n": "\ud800"}, "lone surrogate"),
        ({"n": [[[]]] * 1}, None),
    ],
)
def test_text_jsonb_cannot_hold_is_refused_before_the_database(args, says) -> None:
    make = lambda: NewJob(jid=uuid.uuid4(), queue="q", job_type="HardenedJob", args=args)  # noqa: E731
    if says is None:
        make()
        return
    with pytest.raises(TypeError, match=says):
        make()


def test_args_nested_too_deeply_are_refused_at_enqueue() -> None:
    deep: list = []
    cursor = deep
    for _ in range(5000):
        cursor.append([])
        cursor = cursor[0]
    with pytest.raises(TypeError, match="nested too deeply"):
        NewJob(jid=uuid.uuid4(), queue="q", job_type="HardenedJob", args={"n": deep})


@pytest.mark.parametrize(
    "alter",
    [
        "UPDATE joobq.jobs SET attempt = 2147483647 WHERE jid = %s",
        "UPDATE joobq.jobs SET expires_at = 'infinity' WHERE jid = %s",
        "UPDATE joobq.jobs SET run_at = '-infinity' WHERE jid = %s",
    ],
)
def test_the_table_refuses_rows_that_would_wedge_a_claim(
    pg_store: PostgresStore, pg: psycopg.Connection, alter: str
) -> None:
    jid = pg_store.enqueue(HardenedJob(n=1))
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.execute(alter, (uuid.UUID(jid),))
    assert pg_store.get_job(uuid.UUID(jid)).status is JobStatus.ENQUEUED


def test_a_row_with_args_nested_too_deeply_goes_dead_and_the_queue_goes_on(
    pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    bad = uuid.UUID(pg_store.enqueue(HardenedJob(n=1)))
    good = uuid.UUID(pg_store.enqueue(HardenedJob(n=2)))
    deep = '{"n": 1, "deep": ' + "[" * 5000 + "]" * 5000 + "}"
    pg.execute("UPDATE joobq.jobs SET args = %s::jsonb WHERE jid = %s", (deep, bad))
    pg_store.unrunnable_grace_seconds = 0  # unrunnable means dead at once, not handed back
    claimed = pg_store.claim_jobs_batch("default", "w", HardenedJob, 10)
    assert [c for c in claimed if str(good) in c]
    record = pg_store.get_job(bad)
    assert record.status is JobStatus.DEAD
    assert "nested too deeply" in record.dead_reason
