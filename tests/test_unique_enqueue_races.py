"""A unique enqueue whose holder finishes between the INSERT ... ON CONFLICT DO NOTHING and the
lookup of the holder: "skip" never raises, the insert is tried again, and a batch is written
whole or not at all, in the store's own transaction or in the caller's."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from sqlalchemy import create_engine, text

from joobq_sql import DuplicateJobError, JobStatus, NewJob, PostgresStore


def new_job(n: int = 0, **overrides: Any) -> NewJob:
    values: dict[str, Any] = {"jid": uuid4(), "queue": "u", "job_type": "UJob", "args": {"n": n}}
    values.update(overrides)
    return NewJob(**values)


class VanishingHolders(PostgresStore):
    """Fault injection: right after the INSERT ... ON CONFLICT DO NOTHING skipped unique jobs,
    and before the store looks up who holds their keys, the holders finish (their rows are
    deleted by another connection, as a completion does), `times` times. With `replace`,
    another enqueue of the same key commits right after each lookup, so that the next insert
    conflicts again."""

    def __init__(
        self, url: str, pg: psycopg.Connection, *, times: int = 1, replace: bool = False
    ) -> None:
        super().__init__(url)
        self._pg = pg
        self._left = times
        self._replace = replace
        self.vanished: list[UUID] = []

    def _unique_holders(self, cur: Any, jobs: list[NewJob]) -> dict[tuple[str, str | None], UUID]:
        if self._left <= 0:
            return super()._unique_holders(cur, jobs)
        self._left -= 1
        for job in jobs:
            row = self._pg.execute(
                "DELETE FROM joobq.jobs WHERE job_type = %s AND unique_key = %s RETURNING jid",
                (job.job_type, job.unique_key),
            ).fetchone()
            if row is not None:
                self.vanished.append(row[0])
        holders = super()._unique_holders(cur, jobs)
        if self._replace:
            for job in jobs:
                self._pg.execute(
                    "INSERT INTO joobq.jobs (jid, queue, job_type, status, unique_key)"
                    " VALUES (%s, 'u', %s, 'enqueued', %s)",
                    (uuid4(), job.job_type, job.unique_key),
                )
        return holders


@pytest.fixture
def vanishing(database_url: str, pg: psycopg.Connection) -> Any:
    store = VanishingHolders(database_url, pg)
    yield store
    store.close()


def count_jobs(pg: psycopg.Connection) -> int:
    return pg.execute("SELECT count(*) FROM joobq.jobs").fetchone()[0]


@pytest.mark.parametrize("on_duplicate", ["skip", "raise"])
def test_a_holder_that_finishes_before_its_lookup_lets_the_new_job_in(
    vanishing: VanishingHolders, pg: psycopg.Connection, on_duplicate: str
) -> None:
    holder = vanishing.enqueue_jobs([new_job(1, unique_key="k")])[0]
    job = new_job(2, unique_key="k", on_duplicate=on_duplicate)
    assert vanishing.enqueue_jobs([job]) == [job.jid]  # the key was free again: it went in
    assert vanishing.vanished == [holder]
    assert vanishing.get_job(job.jid).status is JobStatus.ENQUEUED
    assert count_jobs(pg) == 1


def test_a_skipped_job_whose_holder_stays_gets_the_holders_jid(
    pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    holder = pg_store.enqueue_jobs([new_job(1, unique_key="k")])[0]
    assert pg_store.enqueue_jobs([new_job(2, unique_key="k"), new_job(3)])[0] == holder
    assert count_jobs(pg) == 2


def test_holders_that_keep_vanishing_are_looked_up_again_after_each_insert(
    database_url: str, pg: psycopg.Connection
) -> None:
    store = VanishingHolders(database_url, pg, times=0, replace=True)
    try:
        store.enqueue_jobs([new_job(0, unique_key="k")])
        store._left = 3  # three holders in a row finish right after our insert ran into them
        other, job = new_job(1), new_job(2, unique_key="k")
        jids = store.enqueue_jobs([other, job], batch_size=1)
        assert len(store.vanished) == 3
        (holder,) = pg.execute(
            "SELECT jid FROM joobq.jobs WHERE unique_key = 'k' AND status = 'enqueued'"
        ).fetchone()
        assert jids == [other.jid, holder]  # skipped: the fourth holder stood
        assert count_jobs(pg) == 2
    finally:
        store.close()


def test_a_unique_key_that_never_settles_fails_the_batch_whole_in_the_callers_transaction(
    database_url: str, pg: psycopg.Connection
) -> None:
    store = VanishingHolders(database_url, pg, times=0, replace=True)
    engine = create_engine(database_url)
    try:
        store.enqueue_jobs([new_job(0, unique_key="k")])
        store._left = 10_000  # an adversary: every holder finishes and is replaced at once
        with engine.connect() as conn:
            first = new_job(1)
            with pytest.raises(DuplicateJobError, match="kept changing hands"):
                store.enqueue_jobs([first, new_job(2, unique_key="k")], connection=conn)
            conn.commit()
        assert store.get_job(first.jid) is None
    finally:
        engine.dispose()
        store.close()


def test_a_failing_batch_in_the_callers_transaction_leaves_nothing_written(
    database_url: str, pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    taken = pg_store.enqueue_jobs([new_job(0)])[0]
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("CREATE TABLE orders (id int)"))
            conn.execute(text("INSERT INTO orders VALUES (1)"))
            first = new_job(1)
            batch = [first, new_job(2), new_job(3, jid=taken)]  # the third jid is stored
            with pytest.raises(DuplicateJobError):
                pg_store.enqueue_jobs(batch, batch_size=1, connection=conn)
            # The caller's transaction goes on without any job of the batch.
            conn.execute(text("INSERT INTO orders VALUES (2)"))
            conn.commit()
    finally:
        engine.dispose()
    assert pg.execute("SELECT count(*) FROM orders").fetchone()[0] == 2
    assert pg_store.get_job(first.jid) is None
    assert count_jobs(pg) == 1


def test_a_refused_unique_job_in_the_callers_transaction_leaves_its_batch_unwritten(
    database_url: str, pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    pg_store.enqueue_jobs([new_job(0, unique_key="k")])
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            batch = [new_job(1), new_job(2, unique_key="k", on_duplicate="raise")]
            with pytest.raises(DuplicateJobError, match="unique_key 'k'"):
                pg_store.enqueue_jobs(batch, batch_size=1, connection=conn)
            conn.commit()
    finally:
        engine.dispose()
    assert count_jobs(pg) == 1


def test_a_failing_batch_in_the_stores_own_transaction_leaves_nothing_written(
    pg_store: PostgresStore, pg: psycopg.Connection
) -> None:
    taken = pg_store.enqueue_jobs([new_job(0)])[0]
    batch = [new_job(1), new_job(2, unique_key="k"), new_job(3, jid=taken)]
    with pytest.raises(DuplicateJobError):
        pg_store.enqueue_jobs(batch, batch_size=1)
    assert count_jobs(pg) == 1
