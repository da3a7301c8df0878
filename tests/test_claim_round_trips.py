"""What the drain's two statements cost on the wire, read from libpq's trace (see
test_enqueue_round_trips): a claim and a completion are each one statement in one round trip,
its own transaction, with no BEGIN or COMMIT around it; and the connection goes back to the
pool in transactions, as every other block expects it."""

from __future__ import annotations

from uuid import uuid4

from joobq_sql import JobStatus, NewJob, PostgresStore
from tests.test_enqueue_round_trips import Trace, traced_pool


def assert_one_statement_in_its_own_round_trip(trace: Trace) -> None:
    summary = trace.summary()
    assert trace.round_trips == 1, summary
    assert trace.statements == 1, summary
    assert trace.sent("Query") == [], summary  # psycopg's BEGIN and COMMIT are Queries
    (ready,) = trace.received("ReadyForQuery")
    assert ready.body.strip() == "I", summary  # idle: the statement was its own transaction


def enqueue(store: PostgresStore, count: int) -> None:
    store.enqueue_jobs(
        [NewJob(jid=uuid4(), queue="rt", job_type="X", args={}) for _ in range(count)]
    )


def test_a_claim_is_one_statement_in_one_round_trip(pg_store: PostgresStore) -> None:
    enqueue(pg_store, 5)
    pg_store.claim_jobs("rt", "w", 1)  # a first claim: the pool's connection exists

    with traced_pool(pg_store.engine) as trace:
        claimed = pg_store.claim_jobs("rt", "w", 3)

    assert len(claimed) == 3
    assert_one_statement_in_its_own_round_trip(trace)


def test_a_completion_is_one_statement_in_one_round_trip(pg_store: PostgresStore) -> None:
    enqueue(pg_store, 3)
    claimed = pg_store.claim_jobs("rt", "w", 3)

    with traced_pool(pg_store.engine) as trace:
        finished = pg_store.complete_jobs([record.completion for record in claimed])

    assert sorted(finished) == sorted(record.jid for record in claimed)
    assert_one_statement_in_its_own_round_trip(trace)


def test_claim_and_completion_are_committed_and_leave_the_pool_in_transactions(
    pg_store: PostgresStore,
) -> None:
    enqueue(pg_store, 2)
    claimed = pg_store.claim_jobs("rt", "w", 1)
    running = pg_store.get_job(claimed[0].jid)
    pg_store.complete_jobs([claimed[0].completion])

    assert running is not None and running.status is JobStatus.RUNNING
    assert pg_store.get_job(claimed[0].jid) is None
    with pg_store.engine.connect() as connection:
        assert connection.connection.driver_connection.autocommit is False  # type: ignore[union-attr]
