"""A worker runs as a role with data access to joobq's tables only (docs/security.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from joobq_sql import Job, JobStatus, JoobQ, PostgresStore
from tests.helpers import wait_until
from tests.runtime_support import FAST, Recorder

log = Recorder()

GRANTS = """
GRANT USAGE ON SCHEMA joobq TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE
    ON joobq.jobs, joobq.queue_counters, joobq.queue_pauses, joobq.schedule_ticks,
       joobq.workers, joobq.queue_throughput
    TO {role};
GRANT SELECT ON joobq.joobq_alembic_version TO {role};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA joobq TO {role};
"""


class RoleHello(Job):
    n: int

    def perform(self) -> None:
        log.add(("hello", self.n))


class RoleFailsOnce(Job):
    retries = 0

    def perform(self) -> None:
        log.add(("fails", self.attempt))
        raise RuntimeError("always")


def data_role(database_url: str, pg: psycopg.Connection, prefix: str) -> Iterator[str]:
    """A new login role with GRANTS only (dropped after): the URL of `database_url` as it."""
    role = f"{prefix}_{uuid.uuid4().hex[:8]}"
    pg.execute(f'CREATE ROLE "{role}" LOGIN')
    for statement in GRANTS.format(role=f'"{role}"').split(";"):
        if statement.strip():
            pg.execute(statement)
    yield make_url(database_url).set(username=role).render_as_string(hide_password=False)
    pg.execute(f'DROP OWNED BY "{role}"')
    pg.execute(f'DROP ROLE "{role}"')


@pytest.fixture
def worker_url(database_url: str, pg: psycopg.Connection) -> Iterator[str]:
    yield from data_role(database_url, pg, "joobq_worker")


def test_a_worker_needs_only_data_access_to_joobq_tables(worker_url: str) -> None:
    log.events.clear()
    store = PostgresStore(worker_url, lease=30, dead_letter_ttl=3600)
    app = JoobQ(store=store, database_url=worker_url, **FAST)
    app.queue("default", workers=2, jobs=[RoleHello, RoleFailsOnce])
    app.every(1, RoleHello, name="role-every", n=0)
    try:
        RoleHello.enqueue(n=1)
        dead = RoleFailsOnce.enqueue()
        app.pause("default")
        worker = app.start()
        try:
            assert app.resume("default") is True
            wait_until(lambda: ("hello", 1) in log.snapshot(), timeout=15, what="a job ran")
            wait_until(
                lambda: (r := store.get_job(dead)) and r.status is JobStatus.DEAD,
                timeout=15,
                what="a job died",
            )
            wait_until(lambda: ("hello", 0) in log.snapshot(), timeout=15, what="a tick ran")
            assert [w.worker_id for w in store.live_workers()] == [worker.worker_id]
            assert app.retry(dead) == [dead]
        finally:
            worker.stop(grace=5)
        duties = worker.maintainer.stats()
        assert duties and all(d["errors"] == 0 and d["runs"] >= 1 for d in duties.values()), duties
    finally:
        app.close()
    dsn = make_url(worker_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE joobq.not_allowed (x int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE joobq.jobs ADD COLUMN not_allowed int")
