"""The claim's fast path builds JobRecords straight from its rows: the columns claim_jobs.sql
returns must be the ones the store reads them as, and the records must be the stored jobs."""

from __future__ import annotations

import dataclasses
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from joobq_sql import NewJob, PostgresStore
from joobq_sql.status import JobStatus
from joobq_sql.store.postgres.queries import Queries
from joobq_sql.store.postgres.store import CLAIM_COLUMNS
from joobq_sql.store.records import Failure


@pytest.mark.parametrize("statement", ["claim_jobs", "claim_jobs_by_priority"])
def test_claim_jobs_sql_returns_the_columns_the_store_reads(statement: str):
    sql = Queries("joobq")[statement]
    returning = sql[
        sql.index("RETURNING") + len("RETURNING") : sql.index(")\n", sql.index("RETURNING"))
    ]
    # a column sent as text (see the statement) is still that column
    columns = tuple(re.sub(r"^j\.|::text$", "", c.strip()) for c in returning.split(","))
    assert columns == CLAIM_COLUMNS


def test_a_claimed_record_is_the_stored_job_less_its_error_history(pg_store: PostgresStore):
    failed, fresh = uuid.uuid4(), uuid.uuid4()
    pg_store.enqueue_jobs(
        [
            NewJob(
                jid=failed,
                queue="q",
                job_type="Job",
                args={"n": 1, "nested": {"a": [1, 2]}},
                priority=5,
                max_retries=4,
                expires_at=datetime.now(UTC) + timedelta(hours=1),
                unique_key="k",
            ),
            NewJob(jid=fresh, queue="q", job_type="Job", args={}),
        ]
    )
    # One failed run first, so the claim reads back a last error and a second attempt.
    first = pg_store.claim_jobs("q", "w1", 1)
    assert [r.jid for r in first] == [failed]
    pg_store.fail_jobs(
        [Failure(failed, 1, "w1", {"message": "boom"}, retry_in=0.0)], dead_letter_ttl=60.0
    )

    claimed = pg_store.claim_jobs("q", "w2", 10)

    assert [r.jid for r in claimed] == [failed, fresh]  # priority first
    for record in claimed:
        stored = pg_store.get_job(record.jid)
        assert stored is not None
        assert record.errors == []
        assert dataclasses.replace(record, errors=stored.errors) == stored
        assert record.status is JobStatus.RUNNING and record.worker_id == "w2"
    assert claimed[0].attempt == 2 and claimed[0].last_error is not None
